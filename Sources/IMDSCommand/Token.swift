import ArgumentParser
import Foundation
import IMDSClient

struct Token: AsyncParsableCommand {
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
