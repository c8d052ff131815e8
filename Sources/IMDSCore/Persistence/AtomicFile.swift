import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes files so that a crash leaves either the old or the new content, never a torn file:
/// temporary file in the same directory, `fsync`, `rename`, then `fsync` of the directory.
public enum AtomicFile {
    public struct WriteError: Error, CustomStringConvertible {
        public var path: String
        public var operation: String
        public var code: Int32
        public var description: String { "\(operation) \(path): \(String(cString: strerror(code)))" }
    }

    /// `<file>.tmp-<pid>-<random>`: the temporary file ``write(_:to:mode:)`` renames into place.
    static func temporaryName(for path: String) -> String { "\(path).tmp-\(getpid())-\(UInt32.random(in: 0 ... .max))" }

    /// Deletes temporary files that a crash between create and rename left in `directory`: names of
    /// the form `<file>.tmp-<pid>-<digits>` whose writer process is gone (a live writer's file is
    /// kept). Returns the names removed. For the place a state directory is opened.
    @discardableResult
    public static func removeStaleTemporaries(in directory: String) -> [String] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return [] }
        var removed: [String] = []
        for name in names.sorted() {
            guard let r = name.range(of: ".tmp-", options: .backwards), r.lowerBound > name.startIndex else { continue }
            let parts = name[r.upperBound...].split(separator: "-", omittingEmptySubsequences: false)
            guard parts.count == 2, parts.allSatisfy({ !$0.isEmpty && $0.utf8.allSatisfy { $0 >= 48 && $0 <= 57 } }),
                  parts[0].count <= 10, let pid = Int32(parts[0]), pid > 0
            else { continue }
            // Ours, or a live process's: its writer may still rename it.
            if pid == getpid() || kill(pid, 0) == 0 || errno != ESRCH { continue }
            if unlink((directory as NSString).appendingPathComponent(name)) == 0 { removed.append(name) }
        }
        return removed
    }

    public static func write(_ bytes: [UInt8], to path: String, mode: mode_t = 0o600) throws(WriteError) {
        let dir = (path as NSString).deletingLastPathComponent
        let tmp = temporaryName(for: path)
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else { throw WriteError(path: tmp, operation: "create", code: errno) }
        if let e = writeAll(fd, bytes) {
            close(fd)
            unlink(tmp)
            throw WriteError(path: tmp, operation: "write", code: e)
        }
        guard fsync(fd) == 0 else {
            let e = errno
            close(fd)
            unlink(tmp)
            throw WriteError(path: tmp, operation: "fsync", code: e)
        }
        close(fd)
        guard rename(tmp, path) == 0 else {
            let e = errno
            unlink(tmp)
            throw WriteError(path: path, operation: "rename", code: e)
        }
        let dfd = open(dir.isEmpty ? "." : dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 {
            _ = fsync(dfd)
            close(dfd)
        }
    }
}
