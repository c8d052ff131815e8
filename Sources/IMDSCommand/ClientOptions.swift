import ArgumentParser
import Foundation
import IMDSClient

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
