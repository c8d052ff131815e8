@testable import IMDSCore
import Testing

/// How a request target becomes path components (parsed as bytes: the target is ASCII on the wire).
@Suite struct RequestTargetTests {
    @Test(arguments: [
        ("/latest/meta-data/instance-id", ["latest", "meta-data", "instance-id"], false),
        ("/latest/meta-data/", ["latest", "meta-data"], true),
        ("/", [], true),
        ("//latest//meta-data", ["latest", "meta-data"], false),
        ("/latest/meta-data/tags/instance/a%20b", ["latest", "meta-data", "tags", "instance", "a b"], false),
        ("/latest/meta-data/a%2Fb", ["latest", "meta-data", "a/b"], false),
        ("/latest/%zz/%4", ["latest", "%zz", "%4"], false),
        ("/latest/meta-data/?x=1#f", ["latest", "meta-data"], true),
        ("/latest#frag/more", ["latest"], false),
        ("http://169.254.169.254/latest/meta-data/ami-id", ["latest", "meta-data", "ami-id"], false),
        ("https://host", [], true),
        ("/tags/\u{e9}t\u{e9}/\u{1F600}", ["tags", "\u{e9}t\u{e9}", "\u{1F600}"], false),
        // A combining mark after "/" does not glue it to the slash (it did when the target was split as Characters).
        // A combining mark after "/" no longer glues it to the slash (it did when targets were split as Characters).
        ("/a/\u{301}b", ["a", "\u{301}b"], false),
    ] as [(String, [String], Bool)])
    func parses(target: String, components: [String], trailingSlash: Bool) throws {
        let t = try #require(RequestTarget(target))
        #expect(t.components == components)
        #expect(t.trailingSlash == trailingSlash)
    }

    @Test(arguments: ["*", "latest/meta-data", "", "/a\u{0}b", "/a\u{7F}", "/a\nb"])
    func refuses(target: String) {
        #expect(RequestTarget(target) == nil)
    }
}
