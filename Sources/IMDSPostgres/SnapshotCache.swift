import Foundation
import IMDSCore
import Synchronization

/// The last snapshot this host saw, on local disk, so that `imds serve --store postgres://…` can
/// start and serve the data plane while the database is down. One JSON file, mode 0600 (it holds
/// the token secret and the identity key), replaced atomically; written by one task, coalescing
/// bursts (only the latest state is written).
final class SnapshotCache: Sendable {
    struct File: Codable {
        var format = 1
        var location: String
        var revision: StoreRevision
        var state: DurableState
        var identity: SharedIdentity?
    }

    let path: String
    let location: String
    let identity: SharedIdentity?
    private let latest = Mutex<(revision: StoreRevision, state: DurableState)?>(nil)
    private let wake: AsyncStream<Void>.Continuation
    private let woken: AsyncStream<Void>

    /// Told once when the cache cannot be written (the store keeps working without it).
    let warn: @Sendable (String) -> Void
    private let warned = Atomic<Bool>(false)

    init(path: String, location: String, identity: SharedIdentity?, warn: @escaping @Sendable (String) -> Void) {
        self.path = path
        self.location = location
        self.identity = identity
        self.warn = warn
        (woken, wake) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    /// The cache at `path`, or nil when there is none; a damaged one is an error naming the file.
    static func read(_ path: String) throws -> File? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        do {
            return try JSONDecoder().decode(File.self, from: data)
        } catch {
            throw PostgresStoreError.incompatible("the store cache \(path) is damaged (\(error)); delete it (it is rebuilt from the database)")
        }
    }

    /// Asks the writer to save `snapshot` (returns at once).
    func save(_ snapshot: StoreSnapshot) {
        latest.withLock { $0 = (snapshot.revision, snapshot.durable) }
        wake.yield()
    }

    /// Writes the latest state whenever woken, until ``finish()``; then writes once more.
    func run() async {
        for await _ in woken { writeNow() }
        writeNow()
    }

    func finish() { wake.finish() }

    func writeNow() {
        guard let (revision, state) = latest.withLock({ v in defer { v = nil }; return v }) else { return }
        let file = File(location: location, revision: revision, state: state, identity: identity)
        guard let bytes = try? JSONEncoder().encode(file) else { return }
        let dir = (path as NSString).deletingLastPathComponent
        do {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            try AtomicFile.write(Array(bytes), to: path, mode: 0o600)
        } catch {
            if !warned.exchange(true, ordering: .relaxed) {
                warn("cannot write the store cache \(path) (\(error)); a start while the database is down will not find it")
            }
        }
    }
}
