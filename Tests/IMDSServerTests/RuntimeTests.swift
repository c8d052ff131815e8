import Foundation
import IMDSCore
import IMDSRuntime
import IMDSServer
import IMDSTesting
import Synchronization
import Testing

/// `ServerRuntime`, the composition `imds serve` and `TestIMDS` share: its store seam and its errors.
@Suite("Server runtime")
struct RuntimeTests {
    static let loopback = ListenAddress(host: "127.0.0.1", port: 0)

    /// A custom store is opened once, with the configuration and the identity key, and is the one
    /// the data plane answers from and the control plane changes.
    @Test func aCustomStoreIsOpenedOnceAndServed() async throws {
        let opened = Mutex<[String]>([])
        let configuration = ServerConfiguration(
            dataListen: [Self.loopback], controlListen: Self.loopback,
            store: .custom(name: "test-db") { opening in
                opened.withLock { $0.append(opening.config.instance.instanceID) }
                return EmbeddedInstanceStore(config: opening.config, clock: opening.clock, signer: opening.identity)
            },
            callerAttribution: false, identity: TestIMDS.identity)
        let runtime = try await ServerRuntime.open(configuration)
        #expect(opened.withLock { $0 } == [IMDSConfig.embeddedDefault.instance.instanceID])
        try await runtime.start()
        let running = Task { await runtime.run() }
        let data = try #require(runtime.dataAddresses.first)
        let get = "GET /latest/meta-data/instance-id HTTP/1.1\r\nHost: x\r\n\r\n"
        #expect(try RawHTTP.exchange(port: data.port, get).body == IMDSConfig.embeddedDefault.instance.instanceID)
        let id = runtime.store.snapshot.primaryInstanceID
        var options = runtime.store.snapshot.primary.options
        options.httpTokens = .required
        try await runtime.store.apply([.setOptions(instanceID: id, options)])
        #expect(try RawHTTP.exchange(port: data.port, get).status == 401)
        await runtime.triggerGracefulShutdown()
        await running.value
        #expect(opened.withLock { $0.count } == 1)
    }

    @Test func aStoreThatCannotOpenIsAClearError() async throws {
        struct Down: Error, CustomStringConvertible { var description: String { "connection refused" } }
        let configuration = ServerConfiguration(
            dataListen: [Self.loopback], controlListen: Self.loopback,
            store: .custom(name: "postgres://db.example/imds") { _ in throw Down() }, callerAttribution: false,
            identity: TestIMDS.identity)
        let error = await #expect(throws: RuntimeError.self) { try await ServerRuntime.open(configuration) }
        #expect(error?.description == "store postgres://db.example/imds: connection refused")
    }

    /// A port already taken is reported by `start()`, before the group runs, and nothing stays bound.
    @Test func aBusyPortIsReportedByStart() async throws {
        let first = try await TestIMDS().startLive()
        let configuration = ServerConfiguration(
            dataListen: [Self.loopback], controlListen: try #require(first.service.controlAddresses.first),
            callerAttribution: false, identity: TestIMDS.identity)
        let runtime = try await ServerRuntime.open(configuration)
        let error = await #expect(throws: RuntimeError.self) { try await runtime.start() }
        #expect(error?.description.hasPrefix("cannot listen: ") == true)
        #expect(runtime.dataAddresses.isEmpty)
        await first.stop()
    }

    /// `--state-dir`: what the control plane changed is there after a restart of the runtime.
    @Test func theStateDirectoryKeepsChangesAcrossRuntimes() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("imds-runtime-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let configuration = ServerConfiguration(
            dataListen: [Self.loopback], controlListen: Self.loopback, store: .stateDirectory(dir), callerAttribution: false,
            identity: TestIMDS.identity)
        let first = try await ServerRuntime.open(configuration)
        let id = first.store.snapshot.primaryInstanceID
        var options = first.store.snapshot.primary.options
        options.httpPutResponseHopLimit = 7
        try await first.store.apply([.setOptions(instanceID: id, options)])
        let notes = Mutex<[String]>([])
        let second = try await ServerRuntime.open(configuration) { line in notes.withLock { $0.append(line) } }
        #expect(second.store.snapshot.primary.options.httpPutResponseHopLimit == 7)
        #expect(notes.withLock { $0 }.contains { $0.hasPrefix("restored the control-plane state from ") })
    }
}
