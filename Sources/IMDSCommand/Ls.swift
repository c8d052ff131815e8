import ArgumentParser
import Foundation
import IMDSClient

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
