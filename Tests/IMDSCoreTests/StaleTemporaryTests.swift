import Foundation
import Synchronization
import IMDSCore
import Testing

/// Temporary files a crash left in the state directory are removed when it is opened (issue 16.8);
/// files that are not ours, or whose writer is alive, are kept.
@Suite("Stale temporary files")
struct StaleTemporaryTests {
    @Test func openingTheStateDirectoryRemovesStaleTemporaries() throws {
        let dir = NSTemporaryDirectory() + "imds-stale-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let own = ProcessInfo.processInfo.processIdentifier
        let stale = ["journal.tmp-2147483646-12345", "snapshot.tmp-2147483645-1", "secret.key.tmp-2147483644-0"]
        let kept = ["journal.tmp-1-2", "x.tmp-\(own)-5", "notes.tmp-abc", "notes.tmp-1", ".tmp-2147483646-1", "readme.txt",
                    "a.tmp-99999999999-1", "a.tmp--1"]
        for name in stale + kept { #expect(FileManager.default.createFile(atPath: dir + "/" + name, contents: Data("x".utf8))) }
        let notes = Mutex<[String]>([])
        _ = try StateDirectory.open(dir, config: .embeddedDefault) { line in notes.withLock { $0.append(line) } }
        let left = Set(try FileManager.default.contentsOfDirectory(atPath: dir))
        for name in stale { #expect(!left.contains(name), "\(name) left") }
        for name in kept { #expect(left.contains(name), "\(name) removed") }
        let said = notes.withLock { $0 }
        #expect(said.contains { $0.contains("removed 3 stale temporary file(s)") }, "\(said)")
    }
}
