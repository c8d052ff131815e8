import Foundation
import IMDSCore
import IMDSTesting
import Testing

/// ``InstanceRuntime`` keeps its fields in one shared box (a request's copy is one retain): every
/// copy must still behave as a value.
@Suite("Instance runtime copies")
struct InstanceRuntimeTests {
    @Test func aChangedCopyLeavesTheOriginalAlone() throws {
        let imds = try makeIMDS()
        let original = imds.store.snapshot.primary
        _ = original.tree
        #expect(original.isTreeRendered)

        var copy = original
        copy.tokenGeneration = 7
        copy.events = [InstanceEvent(id: "e-1", kind: .rebalanceRecommendation, at: Date(timeIntervalSince1970: 1_800_000_000))]
        copy.setTags([(key: "Name", value: "renamed")], now: Date(timeIntervalSince1970: 1_800_000_100))
        var options = copy.options
        options.httpTokens = .required
        copy.setOptions(options, now: Date(timeIntervalSince1970: 1_800_000_100))

        #expect(original.tokenGeneration == 0)
        #expect(original.events.isEmpty)
        #expect(original.tags.map(\.value).sorted() == ["dev", "web-1"])
        #expect(original.options.httpTokens == .optional)
        #expect(original.isTreeRendered)  // the original's tree is still the one rendered
        #expect(copy.tokenGeneration == 7)
        #expect(copy.events.count == 1)
        #expect(copy.tags.map(\.value) == ["renamed"])
        #expect(copy.options.httpTokens == .required)
        #expect(!copy.isTreeRendered)  // its tags changed: rendered again on first use
        #expect(copy.lastModified == Date(timeIntervalSince1970: 1_800_000_100))
        #expect(original.lastModified != copy.lastModified)
    }

    @Test func anUnchangedCopySharesTheRenderedTree() throws {
        let imds = try makeIMDS()
        let original = imds.store.snapshot.primary
        let copy = original
        _ = copy.tree
        #expect(original.isTreeRendered)  // rendered once, for both
    }

    @Test func aStoreChangeLeavesEarlierSnapshotsAlone() async throws {
        let imds = try makeIMDS()
        let id = imds.store.snapshot.primaryInstanceID
        let before = imds.store.snapshot.primary
        _ = before.tree
        try await imds.store.apply([.setTags(instanceID: id, [InstanceTag(key: "k", value: "v")]), .invalidateTokens(instanceID: id)])
        let after = imds.store.snapshot.primary
        #expect(before.tags.map(\.key).sorted() == ["Env", "Name"])
        #expect(before.isTreeRendered)
        #expect(after.tags.map(\.key) == ["k"])
        #expect(after.tokenGeneration == before.tokenGeneration + 1)
        #expect(!after.isTreeRendered)
        #expect(imds.request("GET", "/latest/meta-data/tags/instance/").bodyText == "k")
    }
}
