import Foundation
import Testing

/// `imds --help` and every subcommand's `--help`, from the built binary: the help text is wrapped by
/// the argument parser alone, so no line ends before the terminal width allows (a newline written
/// into a help string shows up as a sentence broken in the middle).
@Suite("imds --help (binary)")
struct HelpTests {
    static let columns = 80

    /// Every command path, found by walking the SUBCOMMANDS sections from `imds --help` down.
    static func commandPaths(env: [String: String], scratch: ScratchDirectory) async throws -> [(path: [String], help: String)] {
        var found: [(path: [String], help: String)] = []
        var queue: [[String]] = [[]]
        while let path = queue.first, found.count < 200 {
            queue.removeFirst()
            let r = try await runIMDS(path + ["--help"], env: env, scratch: scratch)
            #expect(r.status == 0, "imds \(path.joined(separator: " ")) --help exited \(r.status): \(r.stderr)")
            found.append((path, r.out))
            for name in subcommands(in: r.out) where name != "help" { queue.append(path + [name]) }
        }
        return found
    }

    /// The names listed under `SUBCOMMANDS:`.
    static func subcommands(in help: String) -> [String] {
        let lines = help.split(separator: "\n", omittingEmptySubsequences: false)
        guard let start = lines.firstIndex(where: { $0.hasPrefix("SUBCOMMANDS:") }) else { return [] }
        var names: [String] = []
        for line in lines[(start + 1)...] {
            if line.isEmpty || !line.hasPrefix(" ") { break }
            // Two spaces of indentation, the name, then its abstract (or the next line).
            guard line.hasPrefix("  "), !line.hasPrefix("   ") else { continue }
            if let name = line.dropFirst(2).split(separator: " ").first { names.append(String(name)) }
        }
        return names
    }

    /// Lines that end although the next line's first word would still have fitted (the parser
    /// wraps before the last column): a break that the source wrote, not the wrapper. Prose is at
    /// column 0; a wrapped help text continues at its column (under the text after an option or
    /// subcommand name). A new entry (an option, a subcommand), a list item, a code example or a
    /// line after a colon is deliberate.
    static func prematureBreaks(in help: String, columns: Int) -> [String] {
        let lines = help.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        var problems: [String] = []
        for (a, b) in zip(lines, lines.dropFirst()) where !a.isEmpty && !b.isEmpty {
            let indentA = a.prefix { $0 == " " }.count, indentB = b.prefix { $0 == " " }.count
            let textB = b.dropFirst(indentB)
            guard let firstWord = textB.split(separator: " ").first else { continue }
            if a.hasSuffix(":") || textB.hasPrefix("- ") || textB.hasPrefix("$ ") { continue }
            if indentB == 0, firstWord.hasSuffix(":"), firstWord.dropLast().allSatisfy(\.isUppercase) { continue }  // OPTIONS:
            let isContinuation: Bool
            if indentB == indentA {
                isContinuation = indentA == 0 || indentA > 2  // prose, or the help column
            } else if indentB > indentA, a.count > indentB,
                      a[a.index(a.startIndex, offsetBy: indentB - 1)] == " ",
                      a[a.index(a.startIndex, offsetBy: indentB)] != " " {
                isContinuation = true  // the first line of an entry's help, then its wrapped rest
            } else {
                isContinuation = false
            }
            guard isContinuation else { continue }
            if a.count + 1 + firstWord.count < columns {
                problems.append("\(a)⏎\n\(b)")
            }
        }
        return problems
    }

    @Test func everyHelpWrapsOnlyAtTheWidth() async throws {
        let scratch = try ScratchDirectory()
        let env = childEnvironment(home: scratch.url.path, ["COLUMNS": String(Self.columns)])
        let all = try await Self.commandPaths(env: env, scratch: scratch)
        let names = Set(all.map { $0.path.joined(separator: " ") })
        for expected in ["", "serve", "get", "options", "options set", "events spot", "faults add", "identity certificate", "audit"] {
            #expect(names.contains(expected), "`imds \(expected) --help` was not reached; found \(names.sorted())")
        }
        for (path, help) in all {
            // The usage line is the parser's own and never wrapped.
            let longest = help.split(separator: "\n").filter { !$0.hasPrefix("USAGE:") }.map(\.count).max() ?? 0
            #expect(longest <= Self.columns, "imds \(path.joined(separator: " ")) --help has a line of \(longest) columns")
            let breaks = Self.prematureBreaks(in: help, columns: Self.columns)
            #expect(breaks.isEmpty, "imds \(path.joined(separator: " ")) --help breaks mid-sentence:\n\(breaks.joined(separator: "\n---\n"))")
        }
    }

    /// The detector itself: the broken discussion this test was written for, and a well-wrapped one.
    @Test func detectorFindsTheBrokenDiscussion() {
        let broken = """
            OVERVIEW: A faithful Amazon EC2 Instance Metadata Service (IMDSv1 + IMDSv2).

            `imds serve` serves the embedded default instance on 127.0.0.1:1338 (data
            plane) and
            127.0.0.1:1339 (control plane: the EC2 API for `aws ec2 …`, and the admin
            """
        #expect(Self.prematureBreaks(in: broken, columns: 80) == ["plane) and⏎\n127.0.0.1:1339 (control plane: the EC2 API for `aws ec2 …`, and the admin"])
        let fine = """
              --endpoint <url>        Control-plane URL (default: $IMDS_CONTROL_ENDPOINT or
                                      http://127.0.0.1:1339).
              --http-put-response-hop-limit, --hop-limit <hop-limit>
                                      1 to 64.
              --json                  Print the options as JSON.
            SUBCOMMANDS:
              show                    Print the instance's metadata options.
              set                     Change the instance's metadata options
                                      (ModifyInstanceMetadataOptions).
            """
        #expect(Self.prematureBreaks(in: fine, columns: 80).isEmpty)
    }
}
