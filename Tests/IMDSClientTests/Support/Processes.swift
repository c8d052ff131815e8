import Foundation
import IMDSTesting
import Testing

/// The built `imds` executable, next to the test bundle (`.build/<triple>/debug/imds`).
func imdsBinary() throws -> URL {
    var candidates: [URL] = []
    var dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    for _ in 0..<4 {
        candidates.append(dir.appendingPathComponent("imds"))
        dir = dir.deletingLastPathComponent()
    }
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
    candidates.append(root.appendingPathComponent(".build/debug/imds"))
    for c in candidates where FileManager.default.isExecutableFile(atPath: c.path) && !c.hasDirectoryPath {
        return c
    }
    throw CLIHarnessError("the imds executable was not found (looked in \(candidates.map(\.path))); run `swift build` first")
}

struct CLIHarnessError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// A scratch directory removed at the end of the test.
final class ScratchDirectory: Sendable {
    let url: URL
    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("imds-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }
    func write(_ name: String, _ text: String) throws -> String {
        let p = url.appendingPathComponent(name).path
        try text.write(toFile: p, atomically: true, encoding: .utf8)
        return p
    }
    deinit { try? FileManager.default.removeItem(at: url) }
}

/// The environment for child processes: this one without AWS_* and proxy variables, HOME in scratch.
func childEnvironment(home: String, _ extra: [String: String] = [:]) -> [String: String] {
    var env = ProcessInfo.processInfo.environment.filter { key, _ in
        !key.hasPrefix("AWS_") && !key.lowercased().hasSuffix("_proxy")
    }
    env["HOME"] = home
    for (k, v) in extra { env[k] = v }
    return env
}

struct RunResult {
    var status: Int32
    var stdout: [UInt8]
    var stderr: String
    var out: String { String(decoding: stdout, as: UTF8.self) }
}

/// Runs `imds ARGS…` to completion; output goes through files, so large outputs cannot block it.
func runIMDS(_ args: [String], env: [String: String], scratch: ScratchDirectory) async throws -> RunResult {
    let process = Process()
    process.executableURL = try imdsBinary()
    process.arguments = args
    process.environment = env
    let id = UUID().uuidString
    let outURL = scratch.url.appendingPathComponent("out-\(id)")
    let errURL = scratch.url.appendingPathComponent("err-\(id)")
    _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
    _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
    let out = try FileHandle(forWritingTo: outURL)
    let err = try FileHandle(forWritingTo: errURL)
    process.standardOutput = out
    process.standardError = err
    process.standardInput = FileHandle.nullDevice
    await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
        process.terminationHandler = { _ in c.resume() }
        do { try process.run() } catch {
            process.terminationHandler = nil
            c.resume()
        }
    }
    try? out.close()
    try? err.close()
    return RunResult(status: process.terminationStatus,
                     stdout: Array((try? Data(contentsOf: outURL)) ?? Data()),
                     stderr: String(decoding: (try? Data(contentsOf: errURL)) ?? Data(), as: UTF8.self))
}

/// `imds serve --listen 127.0.0.1:0` started by a test, stopped with SIGTERM.
final class ServeProcess {
    let process: Process
    let url: String

    private init(process: Process, url: String) {
        self.process = process
        self.url = url
    }

    static func start(config: String?, scratch: ScratchDirectory) async throws -> ServeProcess {
        let process = Process()
        process.executableURL = try imdsBinary()
        var args = ["serve", "--listen", "127.0.0.1:0", "--control-listen", "127.0.0.1:0"]
        if let config { args += ["--config", config] }
        process.arguments = args
        process.environment = childEnvironment(home: scratch.url.path)
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        try process.run()
        // Read until the "data plane listening on" line (bounded: the server prints it at once or
        // exits), on a thread of its own: see `onOwnThread`.
        let handle = UncheckedSendable(pipe.fileHandleForReading)
        let (url, text) = await onOwnThread { () -> (String?, String) in
            var text = ""
            for _ in 0..<200 {
                let chunk = handle.value.availableData
                if chunk.isEmpty { break }
                text += String(decoding: chunk, as: UTF8.self)
                if let r = text.range(of: #"data plane listening on (http://[^\s]+)"#, options: .regularExpression) {
                    return (String(text[r]).components(separatedBy: " ").last!, text)
                }
            }
            return (nil, text)
        }
        if let url {
            // Keep draining stdout so the server never blocks on a full pipe.
            handle.value.readabilityHandler = { h in _ = h.availableData }
            return ServeProcess(process: process, url: url)
        }
        process.terminate()
        throw CLIHarnessError("imds serve did not report its data plane address; output: \(text)")
    }

    func stop() {
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
    }
}
