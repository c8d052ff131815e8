import ArgumentParser
import Foundation
import IMDSClient

/// Exit statuses of the client commands (`get`, `ls`, `dump`, `token`); see docs/client-cli.md.
enum ClientExit: Int32 {
    case ok = 0
    /// Any other failure: an unexpected HTTP status (400, 5xx after retries), a malformed answer.
    case failure = 1
    /// Invalid configuration (bad endpoint or mode), or IMDS disabled by AWS_EC2_METADATA_DISABLED.
    case configuration = 2
    /// 404 Not Found: the item does not exist (or does not apply to this instance).
    case notFound = 3
    /// 401 Unauthorized: no or invalid token (IMDSv1 rejected because HttpTokens=required, token expired).
    case unauthorized = 4
    /// 403 Forbidden: the metadata endpoint is disabled (or a proxy's request was refused).
    case forbidden = 5
    /// Timed out connecting or waiting for the answer.
    case timeout = 6
    /// Connection refused: nothing listens at the endpoint.
    case connectionRefused = 7
    /// Another connection failure (unreachable, reset).
    case connectionFailed = 8

    static func of(_ error: IMDSClientError) -> ClientExit {
        switch error.rootCause {
        case .invalidConfiguration, .disabled: return .configuration
        case .httpError(let status, _):
            switch status {
            case 404: return .notFound
            case 401: return .unauthorized
            case 403: return .forbidden
            default: return .failure
            }
        case .transport(let t, _):
            if t.isTimeout { return .timeout }
            if t == .connectionRefused { return .connectionRefused }
            return .connectionFailed
        default: return .failure
        }
    }

    var kind: String {
        switch self {
        case .ok: "ok"
        case .failure: "failure"
        case .configuration: "configuration"
        case .notFound: "not-found"
        case .unauthorized: "unauthorized"
        case .forbidden: "forbidden"
        case .timeout: "timeout"
        case .connectionRefused: "connection-refused"
        case .connectionFailed: "connection-failed"
        }
    }
}

/// Options shared by the client commands.
struct ClientOptions: ParsableArguments {
    @Option(help: ArgumentHelp(
        "IMDS endpoint URI (default: AWS_EC2_METADATA_SERVICE_ENDPOINT, then the AWS config file, then http://169.254.169.254).",
        valueName: "uri"))
    var endpoint: String?

    @Flag(help: "Use the IPv6 endpoint http://[fd00:ec2::254] (endpoint mode IPv6).")
    var ipv6 = false

    @Flag(name: .customLong("v1"), help: "Force IMDSv1: never request a token.")
    var forceV1 = false

    @Flag(name: .customLong("no-v1-fallback"), help: "Fail instead of falling back to IMDSv1 when no token can be had.")
    var noV1Fallback = false

    @Flag(help: "Print JSON (errors too, on standard error).")
    var json = false

    @Option(help: ArgumentHelp("Connect and read timeout in seconds (default 1, or AWS_METADATA_SERVICE_TIMEOUT).", valueName: "seconds"))
    var timeout: Double?

    @Option(help: ArgumentHelp("Retries after the first attempt, for 5xx, 429 and connection errors (default 3).", valueName: "n"))
    var retries: Int?

    func validate() throws {
        if forceV1 && noV1Fallback { throw ValidationError("--v1 and --no-v1-fallback contradict each other; use one.") }
        if let timeout, !(timeout > 0 && timeout <= 3600) { throw ValidationError("--timeout must be a number of seconds greater than 0 (got \(timeout)).") }
        if let retries, !(0...20).contains(retries) { throw ValidationError("--retries must be from 0 to 20 (got \(retries)).") }
    }

    /// The client configuration: the environment and AWS config file, then these flags on top.
    func configuration() throws -> IMDSClientConfiguration {
        var c: IMDSClientConfiguration
        do {
            c = try IMDSClientConfiguration.fromProcessEnvironment(endpoint: endpoint, endpointMode: ipv6 ? .ipv6 : nil)
        } catch let e as IMDSClientError {
            fail(e)
        }
        if forceV1 { c.forceV1 = true }
        if noV1Fallback { c.v1FallbackDisabled = true }
        if let timeout {
            let d = Duration.milliseconds(Int64((timeout * 1000).rounded()))
            c.timeouts = IMDSTimeouts(connect: d, read: d)
        }
        if let retries { c.retries = retries }
        return c
    }

    func makeClient() throws -> IMDSClient { IMDSClient(configuration: try configuration()) }

    /// Reports an error on standard error and exits with its status.
    func fail(_ error: IMDSClientError) -> Never {
        let code = ClientExit.of(error)
        if json {
            var object: [String: Any] = ["message": error.description, "kind": code.kind, "exitCode": Int(code.rawValue)]
            if let s = error.status { object["status"] = s }
            writeStderr(JSONOutput.render(["error": object]))
        } else {
            var message = "imds: \(error)\n"
            switch code {
            case .unauthorized, .forbidden, .timeout, .connectionRefused, .connectionFailed:
                message += "imds: run `imds doctor` for an explanation and the fix\n"
            default: break
            }
            writeStderr(message)
        }
        Foundation.exit(code.rawValue)
    }

    /// Runs a client call, turning an ``IMDSClientError`` into a message and exit status.
    func run<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let e as IMDSClientError {
            fail(e)
        }
    }
}

func writeStdout(_ bytes: [UInt8]) { FileHandle.standardOutput.write(Data(bytes)) }
func writeStdout(_ text: String) { writeStdout(Array(text.utf8)) }
func writeStderr(_ text: String) { FileHandle.standardError.write(Data(text.utf8)) }

enum JSONOutput {
    /// Pretty JSON with sorted keys and a final newline.
    static func render(_ value: Any) -> String {
        guard let data = try? JSONSerialization.data(
            withJSONObject: value, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes, .fragmentsAllowed])
        else { return "null\n" }
        return String(decoding: data, as: UTF8.self) + "\n"
    }

    /// A body as a JSON value: a string when it is UTF-8, else `{"base64": ...}`.
    static func body(_ bytes: [UInt8]) -> Any {
        if let s = String(validating: bytes, as: UTF8.self) { return s }
        return ["base64": Data(bytes).base64EncodedString()]
    }
}

struct Get: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print one metadata value exactly as served.",
        discussion: """
            PATH may be `instance-id`, `meta-data/instance-id` or `/latest/meta-data/instance-id` (also \
            `user-data`, `dynamic/instance-identity/document`). The value goes to standard output with no \
            newline added; errors go to standard error. Exit status: 0 ok, 3 not found (404), 4 unauthorized \
            (401), 5 forbidden (403), 6 timeout, 7 connection refused, 8 other connection error, \
            2 configuration error, 1 anything else.
            """)

    @Argument(help: "The metadata path.")
    var path: String

    @OptionGroup var options: ClientOptions

    func run() async throws {
        let client = try options.makeClient()
        let result = try await options.run { try await client.fetch(path) }
        if options.json {
            writeStdout(JSONOutput.render([
                "path": result.path, "status": result.response.status, "imdsVersion": result.usedToken ? "v2" : "v1",
                "value": JSONOutput.body(result.body),
            ]))
        } else {
            writeStdout(result.body)
        }
    }
}

struct Ls: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ls",
        abstract: "List a metadata directory, one entry per line (sub-directories end in /).",
        discussion: "PATH defaults to meta-data/. Exit statuses as for `imds get`.")

    @Argument(help: "The directory (default: meta-data/).")
    var path: String = "meta-data/"

    @OptionGroup var options: ClientOptions

    func run() async throws {
        let client = try options.makeClient()
        let entries = try await options.run { try await client.list(path) }
        if options.json {
            writeStdout(JSONOutput.render(entries))
        } else {
            writeStdout(entries.map { $0 + "\n" }.joined())
        }
    }
}

struct Dump: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the whole metadata tree (or a subtree) as JSON.",
        discussion: """
            Walks the directory listings as cloud-init does: entries ending in / are directories, \
            public-keys entries `N=name` become `name` → the key, JSON values are decoded, multi-line values \
            become arrays. Role and identity credentials are left out unless --include-credentials is given. \
            Items answering 404 while walking are left out.
            """)

    @Argument(help: "A directory to dump (default: the whole tree: meta-data, dynamic and user-data).")
    var path: String?

    @Flag(help: "Include the secret values under iam/security-credentials and identity-credentials.")
    var includeCredentials = false

    @OptionGroup var options: ClientOptions

    func run() async throws {
        let client = try options.makeClient()
        let walker = TreeWalker(client: client, includeCredentials: includeCredentials)
        let tree: Any = try await options.run {
            if let path { return try await walker.walk(IMDSPath.directory(path)) }
            var root: [String: Any] = [:]
            root["meta-data"] = try await walker.walk("/latest/meta-data/")
            if let dynamic = try await walker.walkIfPresent("/latest/dynamic/") { root["dynamic"] = dynamic }
            if let userData = try await client.userData() { root["user-data"] = JSONOutput.body(userData) }
            return root
        }
        writeStdout(JSONOutput.render(tree))
    }
}

/// Walks IMDS directory listings into a JSON-compatible tree.
struct TreeWalker {
    let client: IMDSClient
    let includeCredentials: Bool

    /// Directories holding secrets (skipped unless asked for, as cloud-init skips security-credentials).
    static let secretDirectories = ["security-credentials", "security-credentials-extended"]

    func walkIfPresent(_ dir: String) async throws -> [String: Any]? {
        do {
            return try await walk(dir)
        } catch IMDSClientError.httpError(status: 404, _) {
            return nil
        }
    }

    func walk(_ dir: String) async throws -> [String: Any] {
        var out: [String: Any] = [:]
        for entry in try await client.list(dir) {
            if entry.hasSuffix("/") {
                let name = String(entry.dropLast())
                if !includeCredentials && Self.secretDirectories.contains(name) { continue }
                if let sub = try await walkIfPresent(dir + entry) { out[name] = sub }
                continue
            }
            var name = entry
            var resource = entry
            if let eq = entry.firstIndex(of: "="), Int(entry[..<eq]) != nil {
                // public-keys: "0=my-key" → my-key: the OpenSSH key at 0/openssh-key.
                name = String(entry[entry.index(after: eq)...])
                resource = "\(entry[..<eq])/openssh-key"
            }
            do {
                out[name] = Self.decodeLeaf(try await client.bytes(dir + resource))
            } catch IMDSClientError.httpError(status: 404, _) {
                continue
            }
        }
        return out
    }

    /// JSON objects and arrays are decoded, multi-line text becomes an array of lines, other text a string.
    static func decodeLeaf(_ bytes: [UInt8]) -> Any {
        guard let text = String(validating: bytes, as: UTF8.self) else { return JSONOutput.body(bytes) }
        if (text.hasPrefix("{") && text.hasSuffix("}")) || (text.hasPrefix("[") && text.hasSuffix("]")),
            let value = try? JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed])
        {
            return value
        }
        if text.contains("\n") { return text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) }
        return text
    }
}

struct TokenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token",
        abstract: "Print a fresh IMDSv2 session token.",
        discussion: """
            For scripts: TOKEN=$(imds token) && curl -H "X-aws-ec2-metadata-token: $TOKEN" ... \
            Never falls back to IMDSv1; exit statuses as for `imds get`.
            """)

    @Option(help: ArgumentHelp("Token lifetime in seconds, 1 to 21600.", valueName: "seconds"))
    var ttl: Int = 21600

    @OptionGroup var options: ClientOptions

    func validate() throws {
        if !(1...21600).contains(ttl) { throw ValidationError("--ttl must be from 1 to 21600 seconds (got \(ttl)).") }
        if options.forceV1 { throw ValidationError("--v1 makes no sense for `imds token`: IMDSv1 has no tokens.") }
    }

    func run() async throws {
        var configuration = try options.configuration()
        configuration.tokenTTL = ttl
        let client = IMDSClient(configuration: configuration)
        let token = try await options.run { try await client.token() }
        if options.json {
            writeStdout(JSONOutput.render([
                "token": token.value, "ttlSeconds": token.ttl,
                "expiresAt": ISO8601DateFormatter().string(from: token.expiresAt),
            ]))
        } else {
            writeStdout(token.value + "\n")
        }
    }
}
