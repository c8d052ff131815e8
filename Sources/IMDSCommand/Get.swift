import ArgumentParser
import Foundation
import IMDSClient

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
