import Foundation
import IMDSControlPlane
import IMDSCore
import Testing

@Suite("Persistence")
struct PersistenceTests {
    let id = Harness.instanceID

    static func tempDir() -> String {
        let dir = NSTemporaryDirectory() + "imds-cp-\(UUID().uuidString)"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    @Test func everyChangeIsWrittenBeforeTheReply() throws {
        let dir = Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = ControlPlaneStateStore(directory: dir)
        let h = Harness(store: store)
        #expect(try store.load() == nil)

        expectOK(h.action("ModifyInstanceMetadataOptions", [("InstanceId", id), ("HttpTokens", "required"), ("HttpPutResponseHopLimit", "2")]), "ModifyInstanceMetadataOptions")
        var saved = try #require(try store.load())
        #expect(saved.sequence == 1)
        #expect(saved.instances[id]?.metadataOptions.httpTokens == .required)
        #expect(saved.instances[id]?.metadataOptions.httpPutResponseHopLimit == 2)
        #expect(saved.accountDefaults == nil)

        expectOK(h.action("CreateTags", [("ResourceId.1", id), ("Tag.1.Key", "Team"), ("Tag.1.Value", "x")]), "CreateTags")
        saved = try #require(try store.load())
        #expect(saved.sequence == 2)
        #expect(saved.instances[id]?.tags.map(\.key) == ["Name", "Env", "Team"])

        expectOK(h.action("ModifyInstanceMetadataDefaults", [("HttpTokens", "required")]), "ModifyInstanceMetadataDefaults")
        saved = try #require(try store.load())
        #expect(saved.sequence == 3)
        #expect(saved.accountDefaults == AccountDefaults(httpTokens: .required))

        // Failed and dry-run calls write nothing.
        expectError(h.action("ModifyInstanceMetadataOptions", [("InstanceId", id), ("HttpTokens", "maybe")]), "InvalidParameterValue")
        expectError(h.action("ModifyInstanceMetadataOptions", [("InstanceId", id), ("HttpTokens", "optional"), ("DryRun", "true")]), "DryRunOperation", status: 412)
        #expect(try store.load()?.sequence == 3)
        #expect(h.controlPlane.state == saved)
        // No temporary files are left behind.
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == [ControlPlaneStateStore.fileName])
    }

    @Test func restartRestoresTheLastAcknowledgedState() throws {
        let dir = Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = ControlPlaneStateStore(directory: dir)
        do {
            let h = Harness(store: store)
            expectOK(h.action("ModifyInstanceMetadataOptions", [("InstanceId", id), ("HttpTokens", "required"), ("InstanceMetadataTags", "enabled")]), "ModifyInstanceMetadataOptions")
            expectOK(h.action("DeleteTags", [("ResourceId.1", id), ("Tag.1.Key", "Env")]), "DeleteTags")
            expectOK(h.action("ModifyInstanceMetadataDefaults", [("HttpPutResponseHopLimit", "4")]), "ModifyInstanceMetadataDefaults")
        }
        let saved = try store.load()
        let h2 = Harness(store: store, restoring: saved)
        let rt = try #require(h2.engine.runtime(id))
        #expect(rt.options.httpTokens == .required)
        #expect(rt.options.instanceMetadataTags == .enabled)
        #expect(rt.tags.map(\.key) == ["Name"])
        #expect(h2.dataStatus() == 401)
        #expect(h2.engine.accountDefaults == AccountDefaults(httpPutResponseHopLimit: 4))
        let d = expectOK(h2.action("GetInstanceMetadataDefaults"), "GetInstanceMetadataDefaults")
        #expect(d?.value("accountLevel/httpPutResponseHopLimit") == "4")
        // The sequence continues.
        expectOK(h2.action("ModifyInstanceMetadataOptions", [("InstanceId", id), ("HttpTokens", "optional")]), "ModifyInstanceMetadataOptions")
        #expect(try store.load()?.sequence == 4)
    }

    @Test(arguments: [
        ("", "not valid JSON"),
        ("{\"format\": 1, \"sequence\": 1, \"instances\": ", "not valid JSON"),
        ("[]", "Expected"),
        ("{\"format\": 1, \"instances\": {}}", "missing key 'sequence'"),
        ("{\"format\": 2, \"sequence\": 0, \"instances\": {}}", "format 2 is not supported"),
        // The next write adds 1 to it: a counter at Int.max would trap on the first change.
        ("{\"format\": 1, \"sequence\": 9223372036854775807, \"instances\": {}}", "sequence 9223372036854775807 is not within 0...9007199254740992"),
        ("{\"format\": 1, \"sequence\": -1, \"instances\": {}}", "is not within 0..."),
        ("{\"format\": 1, \"sequence\": 1e300, \"instances\": {}}", "not valid JSON"),
        ("{\"format\": 1, \"sequence\": 0, \"instances\": {\"web\": {\"metadataOptions\": {\"httpTokens\": \"required\", \"httpEndpoint\": \"enabled\", \"httpPutResponseHopLimit\": 1, \"httpProtocolIPv6\": \"disabled\", \"instanceMetadataTags\": \"disabled\"}, \"tags\": []}}}", "'web' is not an instance id"),
        ("{\"format\": 1, \"sequence\": 0, \"instances\": {\"i-0abc1234def567890\": {\"metadataOptions\": {\"httpTokens\": \"maybe\", \"httpEndpoint\": \"enabled\", \"httpPutResponseHopLimit\": 1, \"httpProtocolIPv6\": \"disabled\", \"instanceMetadataTags\": \"disabled\"}, \"tags\": []}}}", "httpTokens"),
        ("{\"format\": 1, \"sequence\": 0, \"instances\": {\"i-0abc1234def567890\": {\"metadataOptions\": {\"httpTokens\": \"required\", \"httpEndpoint\": \"enabled\", \"httpPutResponseHopLimit\": 99, \"httpProtocolIPv6\": \"disabled\", \"instanceMetadataTags\": \"disabled\"}, \"tags\": []}}}", "not within 1...64"),
    ])
    func corruptFilesGiveClearErrors(content: String, fragment: String) throws {
        let dir = Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = ControlPlaneStateStore(directory: dir)
        try Data(content.utf8).write(to: URL(fileURLWithPath: store.path))
        do {
            _ = try store.load()
            Issue.record("expected an error for \(content)")
        } catch {
            #expect(error.description.contains(store.path))
            #expect(error.description.contains(fragment), "\(error.description)")
        }
    }

    @Test func unwritableStateRefusesTheChange() throws {
        let dir = Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = ControlPlaneStateStore(directory: dir + "/missing-subdir")
        let h = Harness(store: store)
        let r = h.action("ModifyInstanceMetadataOptions", [("InstanceId", id), ("HttpTokens", "required")])
        expectError(r, "InternalError", status: 500)
        #expect(h.engine.runtime(id)?.options.httpTokens == .optional)
        #expect(h.controlPlane.state.sequence == 0)
    }

    @Test func concurrentChangesLeaveTheLatestState() async throws {
        let dir = Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = ControlPlaneStateStore(directory: dir)
        let h = Harness(store: store)
        await withTaskGroup(of: Void.self) { group in
            for n in 1...40 {
                group.addTask {
                    _ = h.action("ModifyInstanceMetadataOptions", [("InstanceId", Harness.instanceID), ("HttpPutResponseHopLimit", String(n))])
                }
            }
        }
        let saved = try #require(try store.load())
        #expect(saved.sequence == 40)
        #expect(saved == h.controlPlane.state)
        #expect(saved.instances[id]?.metadataOptions == h.engine.runtime(id)?.options)
    }

    @Test func memoryOnlyKeepsStateInProcess() {
        let h = Harness()
        expectOK(h.action("ModifyInstanceMetadataOptions", [("InstanceId", id), ("HttpTokens", "required")]), "ModifyInstanceMetadataOptions")
        #expect(h.controlPlane.state.sequence == 1)
        #expect(h.controlPlane.state.instances[id]?.metadataOptions.httpTokens == .required)
    }
}
