import AWSQuery
import IMDSControlPlane
import Testing

@Suite("Query parameters")
struct QueryParametersTests {
    @Test(arguments: [
        ("Action=DescribeInstances&Version=2016-11-15", [["Action", "DescribeInstances"], ["Version", "2016-11-15"]]),
        ("a=x+y&b=%2F%3a&c=", [["a", "x y"], ["b", "/:"], ["c", ""]]),
        ("a&b=1", [["a", ""], ["b", "1"]]),
        ("&&a=1&", [["a", "1"]]),
        ("k=%E2%9C%93", [["k", "✓"]]),
        ("=v&k=v", [["k", "v"]]),
    ])
    func decodes(form: String, expected: [[String]]) {
        let q = QueryParameters.parse(form: form[...])
        #expect(q?.pairs.map { [$0.name, $0.value] } == expected)
    }

    @Test(arguments: ["a=%", "a=%4", "a=%zz", "%G1=1", "a=%FF"])
    func rejectsMalformed(form: String) async {
        #expect(QueryParameters.parse(form: form[...]) == nil)
    }

    @Test func listsAreOrderedByIndexNotArrival() async {
        let q = QueryParameters.parse(form: "InstanceId.2=i-b&InstanceId.1=i-a&InstanceId.10=i-c&InstanceId.x=i-d&InstanceId.0=i-e"[...])!
        #expect(q.list("InstanceId") == ["i-a", "i-b", "i-c"])
    }

    @Test func filtersAndTags() async {
        let q = QueryParameters.parse(form: "Filter.2.Name=b&Filter.1.Name=a&Filter.1.Value.2=y&Filter.1.Value.1=x&Tag.1.Key=K&Tag.2.Key=L&Tag.2.Value=v"[...])!
        #expect(q.filters.map { $0.name } == ["a", "b"])
        #expect(q.filters.map(\.values) == [["x", "y"], []])
        #expect(q.tags.map { $0.key } == ["K", "L"])
        #expect(q.tags.map { $0.value } == [nil, "v"])
    }

    /// 20,000 filters are parsed in one pass (this rescanned every parameter per filter before);
    /// the outcome, not the time, is asserted.
    @Test func manyFiltersParseInOrder() {
        let n = 20_000
        var parts: [String] = []
        for i in stride(from: n, through: 1, by: -1) { parts += ["Filter.\(i).Value.2=b\(i)", "Filter.\(i).Name=f\(i)", "Filter.\(i).Value.1=a\(i)"] }
        parts += ["Filter.7.Name=second", "Filter.7.Value.01=dup"]
        let q = QueryParameters.parse(form: parts.joined(separator: "&")[...])!
        let f = q.filters
        #expect(f.count == n)
        #expect(f.first?.name == "f1" && f.first?.values == ["a1", "b1"])
        #expect(f.last?.name == "f\(n)" && f.last?.values == ["a\(n)", "b\(n)"])
        #expect(f[6].name == "f7" && f[6].values == ["a7", "b7"])  // the first occurrence of a name or index wins
        #expect(f.map(\.name) == (1...n).map { "f\($0)" })
    }

    @Test func firstOccurrenceWins() async {
        let q = QueryParameters.parse(form: "a=1&a=2"[...])!
        #expect(q["a"] == "1")
    }
}
