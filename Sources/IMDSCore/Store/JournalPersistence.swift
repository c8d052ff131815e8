import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The embedded store's disk format, in `--state-dir` (described in `docs/store.md`):
///
/// - `store.journal`: the 8-byte header `IMDSJNL1`, then one frame per committed batch.
/// - `store.snapshot`: the header `IMDSSNP1` and one frame holding the ``DurableState`` at a
///   revision (written aside and renamed, so it is the old or the new one, never torn).
///
/// A frame is `length` (UInt32, little-endian) · `crc32` of the payload (UInt32, LE) · payload
/// (JSON of a ``JournalRecord``). A group of batches is appended with one `write` and one `fsync`.
/// At start the snapshot is loaded and the journal's later records replayed; a torn tail (a frame
/// cut short, or whose checksum fails) is truncated away. When the journal outgrows
/// `compactionBytes`, the state is written as a new snapshot and the journal starts empty, so a
/// start replays a bounded journal.
public final class JournalPersistence: StorePersistence {
    public static let journalName = "store.journal"
    public static let snapshotName = "store.snapshot"
    static let journalHeader = Array("IMDSJNL1".utf8)
    static let snapshotHeader = Array("IMDSSNP1".utf8)
    /// Revisions read from disk beyond this are refused: every batch adds 1, and 2^53 batches are
    /// centuries away, so the addition can never overflow.
    static let maxRevision: StoreRevision = 1 << 53
    /// Frames larger than this are not believed (a torn length field).
    static let maxFrame = 64 << 20

    public let directory: String
    public let compactionBytes: Int
    /// Called with a sentence when recovery repaired something (a torn tail truncated).
    let note: @Sendable (String) -> Void
    /// Set when a failed append could not be cut off again: appending after its bytes would hide
    /// every later record from recovery, so no more writes are made until a restart recovers.
    private let damaged = Mutex(false)

    public var journalPath: String { (directory as NSString).appendingPathComponent(Self.journalName) }
    public var snapshotPath: String { (directory as NSString).appendingPathComponent(Self.snapshotName) }
    public var isVolatile: Bool { false }

    public init(directory: String, compactionBytes: Int = 4 << 20, note: @escaping @Sendable (String) -> Void = { _ in }) {
        self.directory = directory
        self.compactionBytes = compactionBytes
        self.note = note
    }

    /// Whether the directory holds a store already (else a caller may migrate older files into it).
    public var exists: Bool {
        FileManager.default.fileExists(atPath: journalPath) || FileManager.default.fileExists(atPath: snapshotPath)
    }

    // MARK: - Recovery

    public func recover() throws(StoreError) -> (state: DurableState, revision: StoreRevision)? {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw .notDurable("cannot create \(directory): \(error.localizedDescription)")
        }
        var state = DurableState()
        var revision: StoreRevision = 0
        var found = false
        if let bytes = FileManager.default.contents(atPath: snapshotPath).map(Array.init) {
            guard bytes.starts(with: Self.snapshotHeader),
                case .frame(let payload, _) = Self.frame(in: bytes, at: Self.snapshotHeader.count),
                let snap = try? JSONDecoder().decode(SnapshotFile.self, from: Data(payload))
            else {
                throw .invalid("\(snapshotPath) is damaged (its checksum or format is wrong); restore it from a backup or move the state directory away")
            }
            guard snap.revision <= Self.maxRevision else {
                throw .invalid("\(snapshotPath): revision \(snap.revision) is beyond \(Self.maxRevision); the file was not written by imds")
            }
            state = snap.state
            revision = snap.revision
            found = true
        }
        if let bytes = FileManager.default.contents(atPath: journalPath).map(Array.init) {
            found = true
            var offset = Self.journalHeader.count
            if bytes.count < offset || !bytes.starts(with: Self.journalHeader) {
                guard Self.journalHeader.starts(with: bytes) else {
                    throw .invalid("\(journalPath) is not an imds journal; move it away")
                }
                offset = 0  // created but its header never fully written: start it again
            }
            var good = offset
            scan: while offset < bytes.count {
                switch Self.frame(in: bytes, at: offset) {
                case .frame(let payload, let next):
                    guard let record = try? JSONDecoder().decode(JournalRecord.self, from: Data(payload)) else { break scan }
                    guard record.revision <= Self.maxRevision else {
                        throw .invalid("\(journalPath): revision \(record.revision) is beyond \(Self.maxRevision); the file was not written by imds")
                    }
                    if record.revision > revision {
                        do {
                            for c in record.changes { try state.apply(c) }
                        } catch {
                            throw .invalid("\(journalPath): revision \(record.revision) cannot be replayed (\(error))")
                        }
                        revision = record.revision
                    }
                    offset = next
                    good = next
                case .torn:
                    break scan
                }
            }
            if good < bytes.count || good == 0 {
                try truncate(to: good, dropping: bytes.count - good)
            }
        }
        return found ? (state, revision) : nil
    }

    /// Cuts the journal after its last whole record (a crash during an append leaves a torn frame).
    private func truncate(to length: Int, dropping: Int) throws(StoreError) {
        if length == 0 {
            try startJournal()
        } else {
            let fd = open(journalPath, O_WRONLY | O_CLOEXEC)
            guard fd >= 0, ftruncate(fd, off_t(length)) == 0, fsync(fd) == 0 else {
                let e = errno
                if fd >= 0 { close(fd) }
                throw .notDurable("cannot truncate \(journalPath): \(String(cString: strerror(e)))")
            }
            close(fd)
        }
        if dropping > 0 {
            note("\(journalPath): dropped \(dropping) byte(s) of a record that was never acknowledged (torn by a crash)")
        }
    }

    enum Frame {
        case frame([UInt8], next: Int)
        case torn
    }

    static func frame(in bytes: [UInt8], at offset: Int) -> Frame {
        guard bytes.count - offset >= 8 else { return .torn }
        let length = Int(le32(bytes, offset)), sum = le32(bytes, offset + 4)
        guard length <= maxFrame, bytes.count - offset - 8 >= length else { return .torn }
        let payload = Array(bytes[(offset + 8)..<(offset + 8 + length)])
        guard CRC32.checksum(payload) == sum else { return .torn }
        return .frame(payload, next: offset + 8 + length)
    }

    static func le32(_ b: [UInt8], _ i: Int) -> UInt32 {
        UInt32(b[i]) | UInt32(b[i + 1]) << 8 | UInt32(b[i + 2]) << 16 | UInt32(b[i + 3]) << 24
    }

    static func framed(_ payload: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(payload.count + 8)
        for v in [UInt32(payload.count), CRC32.checksum(payload)] {
            out += [UInt8(v & 0xff), UInt8(v >> 8 & 0xff), UInt8(v >> 16 & 0xff), UInt8(v >> 24)]
        }
        return out + payload
    }

    // MARK: - Writing

    struct SnapshotFile: Codable {
        var revision: StoreRevision
        var state: DurableState
    }

    public func write(_ records: [JournalRecord], latest: DurableState) throws(StoreError) {
        guard let last = records.last else { return }
        let encoder = JSONEncoder()
        var bytes: [UInt8] = []
        for r in records {
            // Encoding plain Codable values cannot fail.
            bytes += Self.framed(Array((try? encoder.encode(r)) ?? Data()))
        }
        guard !damaged.withLock({ $0 }) else {
            throw .notDurable("an earlier write to \(journalPath) failed and could not be undone; restart imds to recover the journal")
        }
        if !FileManager.default.fileExists(atPath: journalPath) { try startJournal() }
        let fd = open(journalPath, O_WRONLY | O_APPEND | O_CLOEXEC)
        guard fd >= 0 else { throw .notDurable("open \(journalPath): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw .notDurable("stat \(journalPath): \(String(cString: strerror(errno)))") }
        let before = st.st_size
        /// A failed append is cut off again, so that the next one starts at a frame boundary.
        func undo(_ what: String, _ e: Int32) -> StoreError {
            if ftruncate(fd, before) != 0 || fsync(fd) != 0 { damaged.withLock { $0 = true } }
            return .notDurable("\(what) \(journalPath): \(String(cString: strerror(e)))")
        }
        if let e = writeAll(fd, bytes) { throw undo("write", e) }
        guard fsync(fd) == 0 else { throw undo("fsync", errno) }
        if Int(before) + bytes.count > compactionBytes {
            try compact(latest, revision: last.revision)
        }
    }

    /// Writes `state` as the snapshot (aside, then renamed), then starts an empty journal.
    /// A crash between the two leaves records the snapshot already holds: recovery skips them.
    public func compact(_ state: DurableState, revision: StoreRevision) throws(StoreError) {
        let payload = Array((try? JSONEncoder().encode(SnapshotFile(revision: revision, state: state))) ?? Data())
        do {
            try AtomicFile.write(Self.snapshotHeader + Self.framed(payload), to: snapshotPath)
        } catch {
            throw .notDurable("\(error)")
        }
        try startJournal()
    }

    private func startJournal() throws(StoreError) {
        do {
            try AtomicFile.write(Self.journalHeader, to: journalPath)
        } catch {
            throw .notDurable("\(error)")
        }
    }
}

/// CRC-32 (IEEE 802.3, the zlib polynomial), table-driven.
enum CRC32 {
    static let table: [UInt32] = (0..<256).map { i in
        var c = UInt32(i)
        for _ in 0..<8 { c = c & 1 == 1 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    static func checksum(_ bytes: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes { c = table[Int((c ^ UInt32(b)) & 0xff)] ^ (c >> 8) }
        return c ^ 0xFFFF_FFFF
    }
}
