import Foundation

/// `--state-dir`: opens the embedded durable store there, migrating the files of earlier versions
/// (`control-plane.json`, `secret.key`) into it on the first start.
public enum StateDirectory {
    /// The control plane's state file of earlier versions (format 1), renamed `*.migrated` once imported.
    public static let legacyStateFile = "control-plane.json"
    /// The token secret of earlier versions (32 bytes), imported on the first start.
    public static let legacySecretFile = "secret.key"

    /// Opens (or creates) the store in `directory`.
    /// - Parameter note: receives a sentence for each thing worth telling the operator (migration, repair).
    public static func open(
        _ directory: String, config: IMDSConfig, clock: any IMDSClock = SystemClock(),
        signer: (any IdentityDocumentSigner)? = nil, compactionBytes: Int = 4 << 20,
        note: @escaping @Sendable (String) -> Void = { _ in }
    ) throws(StoreError) -> EmbeddedInstanceStore {
        // A crash between a temporary file's creation and its rename leaves it behind: clean up first.
        let stale = AtomicFile.removeStaleTemporaries(in: directory)
        if !stale.isEmpty { note("removed \(stale.count) stale temporary file(s) left by an interrupted write: \(stale.joined(separator: ", "))") }
        let persistence = JournalPersistence(directory: directory, compactionBytes: compactionBytes, note: note)
        var secret: [UInt8]? = nil
        var migrating: [StoreChange] = []
        let legacyPath = (directory as NSString).appendingPathComponent(legacyStateFile)
        let fresh = !persistence.exists
        if fresh {
            let secretPath = (directory as NSString).appendingPathComponent(legacySecretFile)
            if let data = FileManager.default.contents(atPath: secretPath) {
                guard data.count == 32 else {
                    throw .invalid("\(secretPath): expected 32 bytes, found \(data.count); delete it to create a new secret (tokens issued so far become invalid)")
                }
                secret = Array(data)
            }
            if FileManager.default.fileExists(atPath: legacyPath) {
                migrating = try LegacyControlPlaneState.changes(at: legacyPath)
            }
        }
        let store = try EmbeddedInstanceStore(
            config: config, persistence: persistence, clock: clock, signer: signer, initialSecret: secret, migrating: migrating)
        if fresh, FileManager.default.fileExists(atPath: legacyPath) {
            _ = rename(legacyPath, legacyPath + ".migrated")
            note("imported \(legacyPath) into \(persistence.journalPath) (the old file is kept as \(legacyStateFile).migrated)")
        }
        return store
    }
}

/// The state file earlier versions wrote (`control-plane.json`, format 1): read once, to migrate it.
enum LegacyControlPlaneState {
    struct File: Decodable {
        struct Record: Decodable {
            var metadataOptions: MetadataOptions
            var tags: [InstanceTag]
        }
        var format: Int
        var sequence: Int
        var accountDefaults: AccountDefaults?
        var instances: [String: Record]
    }

    /// The largest `sequence` earlier versions accepted (2^53, exact in every JSON reader).
    static let maxSequence = 1 << 53

    static func changes(at path: String) throws(StoreError) -> [StoreChange] {
        guard let data = FileManager.default.contents(atPath: path) else { throw .invalid("\(path) cannot be read") }
        let file: File
        do {
            file = try JSONDecoder().decode(File.self, from: data)
        } catch {
            throw .invalid("state file \(path) is not valid (\(error)); fix it, or move it away to start from the config file (changes made through the control plane would be lost)")
        }
        func invalid(_ why: String) -> StoreError {
            .invalid("state file \(path) is not valid: \(why); fix it, or move it away to start from the config file (changes made through the control plane would be lost)")
        }
        guard file.format == 1 else { throw invalid("format \(file.format) is not supported (expected 1)") }
        guard (0...maxSequence).contains(file.sequence) else { throw invalid("sequence \(file.sequence) is not within 0...\(maxSequence)") }
        if let bad = file.instances.keys.sorted().first(where: { !InstanceIDs.isWellFormed($0) }) {
            throw invalid("'\(bad)' is not an instance id")
        }
        var out: [StoreChange] = []
        if let d = file.accountDefaults { out.append(.setAccountDefaults(d)) }
        for (id, r) in file.instances.sorted(by: { $0.key < $1.key }) {
            out.append(.setOptions(instanceID: id, r.metadataOptions))
            out.append(.setTags(instanceID: id, r.tags))
        }
        var scratch = DurableState()
        for c in out {
            do throws(StoreError) { try scratch.apply(c) } catch { throw invalid("\(error)") }
        }
        return out
    }
}
