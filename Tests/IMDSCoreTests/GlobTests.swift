import IMDSCore
import Testing

/// The one wildcard matcher (EC2 filter values and fault paths): semantics, and pathological
/// patterns that a backtracking matcher takes exponential time on (outcome asserted, not time).
@Suite("Glob")
struct GlobTests {
    @Test(arguments: [
        ("*", "", true), ("*", "anything", true), ("", "", true), ("", "a", false),
        ("web*", "web-1", true), ("web*", "app", false), ("*-1", "web-1", true), ("w*b*1", "web-1", true),
        ("?", "a", true), ("?", "", false), ("??", "a", false), ("w?b-?", "web-1", true),
        ("\\*", "*", true), ("\\*", "a", false), ("\\?", "?", true), ("\\?", "a", false), ("a\\\\b", "a\\b", true),
        ("a\\", "a\\", true), ("**", "", true), ("a**b", "ab", true), ("*a*a*a*", "aaa", true), ("*a*a*a*", "aa", false),
        ("✓*", "✓ok", true), ("?", "✓", true),
    ])
    func ec2Filters(pattern: String, text: String, matches: Bool) {
        #expect(Glob.matches(pattern, text, syntax: .ec2Filter) == matches)
    }

    @Test(arguments: [
        ("*", "/latest/meta-data/", true), ("/latest/*", "/latest/api/token", true), ("/latest/api/token", "/latest/api/token", true),
        ("/latest/*/iam/*", "/latest/meta-data/iam/info", true), ("/latest/?", "/latest/a", false), ("/latest/?", "/latest/?", true),
        ("/a\\*", "/a\\b", true), ("/a\\*", "/a*", false), ("*token", "/latest/api/token", true), ("*token", "/latest/api/tokens", false),
    ])
    func faultPaths(pattern: String, path: String, matches: Bool) {
        #expect(Glob.matches(pattern, path, syntax: .starOnly) == matches)
        #expect(Fault(kind: .throttle, pathPattern: pattern).matches(path: path) == matches)
    }

    /// `*?*?*?…!` pinned a core for minutes with the recursive matcher; the answers must be right.
    @Test func pathologicalPatterns() {
        let starQ = String(repeating: "*?", count: 5000) + "!"
        #expect(!Glob.matches(starQ, String(repeating: "a", count: 256)))
        #expect(!Glob.matches(starQ, String(repeating: "a", count: 20_000)))
        #expect(Glob.matches(starQ, String(repeating: "a", count: 5000) + "!"))
        #expect(!Glob.matches(String(repeating: "*a", count: 3000) + "b", String(repeating: "a", count: 4000)))
        #expect(Glob.matches(String(repeating: "*a", count: 300) + "*", String(repeating: "a", count: 300)))
        #expect(!Glob.matches(String(repeating: "*", count: 100_000) + "x", String(repeating: "y", count: 1000)))
        // A pattern longer than the text is refused without walking it.
        #expect(!Glob.matches(String(repeating: "a", count: 1 << 20), "aaa"))
        #expect(!Glob.matches(String(repeating: "*?", count: 1 << 18), "short"))
        #expect(!Glob.matches(String(repeating: "*/", count: 5000) + "!", String(repeating: "/", count: 4000), syntax: .starOnly))
    }
}
