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
    func rejectsMalformed(form: String) {
        #expect(QueryParameters.parse(form: form[...]) == nil)
    }

    @Test func listsAreOrderedByIndexNotArrival() {
        let q = QueryParameters.parse(form: "InstanceId.2=i-b&InstanceId.1=i-a&InstanceId.10=i-c&InstanceId.x=i-d&InstanceId.0=i-e"[...])!
        #expect(q.list("InstanceId") == ["i-a", "i-b", "i-c"])
    }

    @Test func filtersAndTags() {
        let q = QueryParameters.parse(form: "Filter.2.Name=b&Filter.1.Name=a&Filter.1.Value.2=y&Filter.1.Value.1=x&Tag.1.Key=K&Tag.2.Key=L&Tag.2.Value=v"[...])!
        #expect(q.filters.map { $0.name } == ["a", "b"])
        #expect(q.filters.map(\.values) == [["x", "y"], []])
        #expect(q.tags.map { $0.key } == ["K", "L"])
        #expect(q.tags.map { $0.value } == [nil, "v"])
    }

    @Test func firstOccurrenceWins() {
        let q = QueryParameters.parse(form: "a=1&a=2"[...])!
        #expect(q["a"] == "1")
    }
}
