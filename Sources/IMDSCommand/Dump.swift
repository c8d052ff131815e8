import ArgumentParser
import Foundation
import IMDSClient

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
