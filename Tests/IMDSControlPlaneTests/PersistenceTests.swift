import Foundation
import IMDSControlPlane
import IMDSCore
import Testing

/// The control plane over the durable store: every acknowledged change is on disk before the reply.
@Suite("Persistence")
struct PersistenceTests {
    let id = Harness.instanceID

    static func tempDir() -> String {
        let dir = NSTemporaryDirectory() + "imds-cp-\(UUID().uuidString)"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    /// A harness over the durable store in `dir`.
    static func durable(_ dir: String, config: IMDSConfig = .embeddedDefault) throws -> Harness {
        try Harness(config: config) { config, clock in try StateDirectory.open(dir, config: config, clock: clock) }
    }

    /// What a new process finds in `dir`.
    static func restart(_ dir: String) throws -> StoreSnapshot {
        try StateDirectory.open(dir, config: .embeddedDefault).snapshot
    }

    @Test func everyChangeIsWrittenBeforeTheReply() async throws {
        let dir = Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let h = try Self.durable(dir)
        let start = h.store.snapshot.revision

        expectOK(await h.action("ModifyInstanceMetadataOptions", [("InstanceId", id), ("HttpTokens", "required"), ("HttpPutResponseHopLimit", "2")]), "ModifyInstanceMetadataOptions")
        var saved = try Self.restart(dir)
        #expect(saved.revision == start + 1)
        #expect(saved.instance(id)?.options.httpTokens == .required)
        #expect(saved.instance(id)?.options.httpPutResponseHopLimit == 2)
        #expect(saved.durable.accountDefaults == nil)

        expectOK(await h.action("CreateTags", [("ResourceId.1", id), ("Tag.1.Key", "Team"), ("Tag.1.Value", "x")]), "CreateTags")
        saved = try Self.restart(dir)
        #expect(saved.revision == start + 2)
        #expect(saved.instance(id)?.tags.map(\.key) == ["Name", "Env", "Team"])

        expectOK(await h.action("ModifyInstanceMetadataDefaults", [("HttpTokens", "required")]), "ModifyInstanceMetadataDefaults")
        saved = try Self.restart(dir)
        #expect(saved.revision == start + 3)
        #expect(saved.durable.accountDefaults == AccountDefaults(httpTokens: .required))

        // Failed and dry-run calls write nothing.
        expectError(await h.action("ModifyInstanceMetadataOptions", [("InstanceId", id), ("HttpTokens", "maybe")]), "InvalidParameterValue")
        expectError(await h.action("ModifyInstanceMetadataOptions", [("InstanceId", id), ("HttpTokens", "optional"), ("DryRun", "true")]), "DryRunOperation", status: 412)
        #expect(try Self.restart(dir).revision == start + 3)
        #expect(h.store.snapshot.durable == saved.durable)
        // No temporary files are left behind.
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == [JournalPersistence.journalName])
    }

    @Test func restartRestoresTheLastAcknowledgedState() async throws {
        let dir = Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        do {
            let h = try Self.durable(dir)
            expectOK(await h.action("ModifyInstanceMetadataOptions", [("InstanceId", id), ("HttpTokens", "required"), ("InstanceMetadataTags", "enabled")]), "ModifyInstanceMetadataOptions")
            expectOK(await h.action("DeleteTags", [("ResourceId.1", id), ("Tag.1.Key", "Env")]), "DeleteTags")
            expectOK(await h.action("ModifyInstanceMetadataDefaults", [("HttpPutResponseHopLimit", "4")]), "ModifyInstanceMetadataDefaults")
        }
        let h2 = try Self.durable(dir)
        let before = h2.store.snapshot.revision
        let rt = try #require(h2.store.snapshot.instance(id))
        #expect(rt.options.httpTokens == .required)
        #expect(rt.options.instanceMetadataTags == .enabled)
        #expect(rt.tags.map(\.key) == ["Name"])
        #expect(h2.dataStatus() == 401)
        #expect(h2.store.snapshot.accountDefaults == AccountDefaults(httpPutResponseHopLimit: 4))
        let d = expectOK(await h2.action("GetInstanceMetadataDefaults"), "GetInstanceMetadataDefaults")
        #expect(d?.value("accountLevel/httpPutResponseHopLimit") == "4")
        // The revisions continue.
        expectOK(await h2.action("ModifyInstanceMetadataOptions", [("InstanceId", id), ("HttpTokens", "optional")]), "ModifyInstanceMetadataOptions")
        #expect(try Self.restart(dir).revision == before + 1)
    }

    @Test(arguments: [
        ("", "is not valid"),
        ("{\"format\": 1, \"sequence\": 1, \"instances\": ", "is not valid"),
        ("[]", "is not valid"),
        ("{\"format\": 1, \"instances\": {}}", "sequence"),
        ("{\"format\": 2, \"sequence\": 0, \"instances\": {}}", "format 2 is not supported"),
        // The next write adds 1 to it: a counter at Int.max would trap on the first change.
        ("{\"format\": 1, \"sequence\": 9223372036854775807, \"instances\": {}}", "sequence 9223372036854775807 is not within 0...9007199254740992"),
        ("{\"format\": 1, \"sequence\": -1, \"instances\": {}}", "is not within 0..."),
        ("{\"format\": 1, \"sequence\": 1e300, \"instances\": {}}", "is not valid"),
        ("{\"format\": 1, \"sequence\": 0, \"instances\": {\"web\": {\"metadataOptions\": {\"httpTokens\": \"required\", \"httpEndpoint\": \"enabled\", \"httpPutResponseHopLimit\": 1, \"httpProtocolIPv6\": \"disabled\", \"instanceMetadataTags\": \"disabled\"}, \"tags\": []}}}", "'web' is not an instance id"),
        ("{\"format\": 1, \"sequence\": 0, \"instances\": {\"i-0abc1234def567890\": {\"metadataOptions\": {\"httpTokens\": \"maybe\", \"httpEndpoint\": \"enabled\", \"httpPutResponseHopLimit\": 1, \"httpProtocolIPv6\": \"disabled\", \"instanceMetadataTags\": \"disabled\"}, \"tags\": []}}}", "httpTokens"),
        ("{\"format\": 1, \"sequence\": 0, \"instances\": {\"i-0abc1234def567890\": {\"metadataOptions\": {\"httpTokens\": \"required\", \"httpEndpoint\": \"enabled\", \"httpPutResponseHopLimit\": 99, \"httpProtocolIPv6\": \"disabled\", \"instanceMetadataTags\": \"disabled\"}, \"tags\": []}}}", "not within 1...64"),
    ])
    func damagedEarlierStateFilesGiveClearErrors(content: String, fragment: String) throws {
        let dir = Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = (dir as NSString).appendingPathComponent(StateDirectory.legacyStateFile)
        try Data(content.utf8).write(to: URL(fileURLWithPath: path))
        do {
            _ = try Self.restart(dir)
            Issue.record("expected an error for \(content)")
        } catch {
            #expect("\(error)".contains(path))
            #expect("\(error)".contains(fragment), "\(error)")
        }
        // Nothing was half-imported.
        #expect(!FileManager.default.fileExists(atPath: (dir as NSString).appendingPathComponent(JournalPersistence.journalName)))
    }

    @Test func unwritableStateRefusesTheChange() async throws {
        let dir = Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let h = try Self.durable(dir)
        let journal = (dir as NSString).appendingPathComponent(JournalPersistence.journalName)
        try FileManager.default.removeItem(atPath: journal)
        try FileManager.default.createDirectory(atPath: journal, withIntermediateDirectories: false)
        let r = await h.action("ModifyInstanceMetadataOptions", [("InstanceId", id), ("HttpTokens", "required")])
        expectError(r, "InternalError", status: 500)
        #expect(h.store.snapshot.instance(id)?.options.httpTokens == .optional)
        #expect(h.dataStatus() == 200)
    }

    @Test func concurrentChangesLeaveTheLatestState() async throws {
        let dir = Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let h = try Self.durable(dir)
        let start = h.store.snapshot.revision
        await withTaskGroup(of: Void.self) { group in
            for n in 1...40 {
                group.addTask {
                    _ = await h.action("ModifyInstanceMetadataOptions", [("InstanceId", Harness.instanceID), ("HttpPutResponseHopLimit", String(n))])
                }
            }
        }
        let saved = try Self.restart(dir)
        #expect(saved.revision == start + 40)
        #expect(saved.durable == h.store.snapshot.durable)
        #expect(saved.instance(id)?.options == h.store.snapshot.instance(id)?.options)
    }

    @Test func memoryOnlyKeepsStateInProcess() async {
        let h = Harness()
        let start = h.store.snapshot.revision
        expectOK(await h.action("ModifyInstanceMetadataOptions", [("InstanceId", id), ("HttpTokens", "required")]), "ModifyInstanceMetadataOptions")
        #expect(h.store.snapshot.revision == start + 1)
        #expect(h.store.snapshot.instance(id)?.options.httpTokens == .required)
    }
}
