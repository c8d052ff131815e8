import Dispatch
import Foundation
import IMDSCore
import Synchronization

/// Shared by the libFuzzer harnesses (see docs/fuzzing.md): turning fuzz bytes into requests and
/// checking what every response must satisfy.
public enum FuzzInput {
    /// `METHOD TARGET` on the first line, `Name: value` lines after it, then a blank line and a body.
    /// Bytes are decoded as (lossy) UTF-8, as the transport would.
    public static func request(_ bytes: [UInt8]) -> IMDSRequest {
        let split = bytes.firstRange(of: [10, 10]) ?? bytes.endIndex..<bytes.endIndex
        let headBytes = bytes[..<split.lowerBound]
        let body = Array(bytes[split.upperBound...])
        let lines = headBytes.split(separator: 10, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
        let first = lines.first ?? ""
        let method: String, target: String
        if let space = first.firstIndex(of: " ") {
            method = String(first[..<space])
            target = String(first[first.index(after: space)...])
        } else {
            method = "GET"
            target = first
        }
        var headers: [(name: String, value: String)] = []
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers.append((String(line[..<colon]), String(line[line.index(after: colon)...]).trimmingCharacters(in: .whitespaces)))
        }
        return IMDSRequest(method: method, target: target, headers: headers,
                           peer: PeerAddress(ip: "127.0.0.1", port: 40000), bodyLength: body.count, body: body)
    }

    /// Crashes (so that libFuzzer records the input) when `condition` is false.
    public static func require(_ condition: Bool, _ message: @autoclosure () -> String) {
        if !condition {
            FileHandle.standardError.write(Data("invariant violated: \(message())\n".utf8))
            abort()
        }
    }

    /// What every data-plane response must satisfy: no 5xx unless a fault made it, a correct
    /// Content-Length, no CR/LF inside a header (response splitting).
    public static func checkDataPlane(_ request: IMDSRequest, _ response: IMDSResponse) {
        let context = "\(request.method) \(request.target.debugDescription) → \(response.status)"
        if response.action == .respondAndClose {
            require((200..<600).contains(response.status), "status out of range: \(context)")
            require(response.status < 500 || response.outcome.fault != nil, "5xx without a fault: \(context)")
            require(response.header("Content-Length") == String(response.body.count), "Content-Length mismatch: \(context)")
        }
        for (name, value) in response.headers {
            require(!name.utf8.contains(where: { $0 == 13 || $0 == 10 }) && !value.utf8.contains(where: { $0 == 13 || $0 == 10 }),
                    "CR/LF in header \(name): \(context)")
        }
        let wire = response.serialized()
        require(wire.starts(with: Array("HTTP/1.1 ".utf8)), "bad status line: \(context)")
    }

    /// Runs an async call to completion from the (synchronous) fuzz callback.
    public static func wait<T: Sendable>(_ body: @escaping @Sendable () async -> T) -> T {
        let box = Mutex<T?>(nil)
        let done = DispatchSemaphore(value: 0)
        Task {
            let value = await body()
            box.withLock { $0 = value }
            done.signal()
        }
        done.wait()
        return box.withLock { $0! }
    }
}
