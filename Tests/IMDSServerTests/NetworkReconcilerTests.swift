import Foundation
import IMDSCore
@testable import IMDSServer
import IMDSTesting
import Logging
import ServiceLifecycle
import Synchronization
import Testing

/// The network reconciler's decisions, against a fake host (no sockets, no `ip`): link-local
/// addresses added at start and removed exactly once; IPv6 listeners following the store.
@Suite("Network reconciler")
struct NetworkReconcilerTests {
    /// Records every effect in order; `failBinds` makes listener starts fail.
    final class FakeHost: NetworkEffects {
        let log = Mutex<[String]>([])
        let failBinds = Atomic<Bool>(false)
        let nextPort = Atomic<Int>(40000)
        var events: [String] { log.withLock { $0 } }

        func addLinkLocal(interface: String) throws -> [String] {
            log.withLock { $0.append("add \(interface)") }
            return ["169.254.169.254/32", "fd00:ec2::254/128"]
        }
        func removeLinkLocal(_ added: [String], interface: String) {
            log.withLock { $0.append("remove \(interface) \(added.joined(separator: ","))") }
        }
        func startListener(_ address: ListenAddress) async throws -> ListenAddress {
            if failBinds.load(ordering: .relaxed) {
                log.withLock { $0.append("bind-failed \(address.host)") }
                throw POSIXError(.EADDRNOTAVAIL)
            }
            let port = address.port != 0 ? address.port : nextPort.wrappingAdd(1, ordering: .relaxed).newValue
            log.withLock { $0.append("start \(address.host) \(port)") }
            return ListenAddress(host: address.host, port: port)
        }
        func stopListener(_ bound: ListenAddress) async {
            log.withLock { $0.append("stop \(bound.host) \(bound.port)") }
        }
    }

    static func setIPv6(_ imds: TestIMDS, _ state: MetadataOptions.Toggle) async throws {
        let id = imds.store.snapshot.primaryInstanceID
        var o = imds.instance.options
        o.httpProtocolIPv6 = state
        try await imds.store.apply([.setOptions(instanceID: id, o)])
    }

    /// Waits (bounded, 10 s) until the host has seen `count` effects.
    static func wait(_ host: FakeHost, count: Int) async throws {
        for _ in 0..<1000 where host.events.count < count { try await Task.sleep(for: .milliseconds(10)) }
    }

    @Test func linkLocalIsAddedAtStartAndRemovedOnceOnGracefulShutdown() async throws {
        let imds = TestIMDS()
        let host = FakeHost()
        let network = NetworkReconciler(store: imds.store, effects: host, ipv6: [ListenAddress(host: "fd00:ec2::254", port: 80)], linkLocalInterface: "eth9")
        try network.prepare()
        await network.activate()
        #expect(host.events == ["add eth9"])  // IPv6 is disabled: no listener on fd00:ec2::254
        #expect(network.inactiveIPv6Addresses == [ListenAddress(host: "fd00:ec2::254", port: 80)])
        let group = ServiceGroup(services: [network], logger: Logger(label: "test"))
        let running = Task { try await group.run() }
        await group.triggerGracefulShutdown()
        try await running.value
        await network.release()  // a second release (the runtime's safety net) does nothing
        #expect(host.events == ["add eth9", "remove eth9 169.254.169.254/32,fd00:ec2::254/128"])
    }

    @Test func aFailedStartRemovesTheAddressesOnce() async throws {
        let imds = TestIMDS()
        let host = FakeHost()
        let network = NetworkReconciler(store: imds.store, effects: host, ipv6: [], linkLocalInterface: "eth9")
        try network.prepare()
        // The listeners could not bind: the runtime releases instead of running.
        await network.release()
        await network.release()
        #expect(host.events == ["add eth9", "remove eth9 169.254.169.254/32,fd00:ec2::254/128"])
    }

    @Test func withoutLinkLocalNothingIsAddedOrRemoved() async throws {
        let host = FakeHost()
        let network = NetworkReconciler(store: TestIMDS().store, effects: host, ipv6: [], linkLocalInterface: nil)
        try network.prepare()
        await network.activate()
        await network.release()
        #expect(host.events.isEmpty)
    }

    /// Enabled → started; disabled → stopped; enabled again → the same port; unrelated changes do
    /// nothing; graceful shutdown stops what runs.
    @Test func ipv6ListenersFollowTheChangeStream() async throws {
        let imds = try TestIMDS(yaml: "instance:\n  metadata-options:\n    http-protocol-ipv6: enabled\n")
        let host = FakeHost()
        let network = NetworkReconciler(store: imds.store, effects: host, ipv6: [ListenAddress(host: "::1", port: 0)], linkLocalInterface: nil)
        try network.prepare()
        await network.activate()
        #expect(host.events == ["start ::1 40001"])
        let group = ServiceGroup(services: [network], logger: Logger(label: "test"))
        let running = Task { try await group.run() }

        try await Self.setIPv6(imds, .disabled)
        try await Self.wait(host, count: 2)
        #expect(host.events == ["start ::1 40001", "stop ::1 40001"])
        #expect(network.inactiveIPv6Addresses == [ListenAddress(host: "::1", port: 40001)])

        let id = imds.store.snapshot.primaryInstanceID
        try await imds.store.apply([.setTags(instanceID: id, [InstanceTag(key: "k", value: "v")])])
        try await Self.setIPv6(imds, .enabled)
        try await Self.wait(host, count: 3)
        #expect(host.events == ["start ::1 40001", "stop ::1 40001", "start ::1 40001"])  // the port it had

        try await Self.setIPv6(imds, .enabled)  // no change in what is wanted: nothing to do
        await group.triggerGracefulShutdown()
        try await running.value
        #expect(host.events == ["start ::1 40001", "stop ::1 40001", "start ::1 40001", "stop ::1 40001"])
        #expect(network.activeIPv6Addresses.isEmpty)
    }

    /// A bind that fails leaves the address off (said in the log) and is tried again on the next change.
    @Test func aFailedBindIsRetriedOnTheNextChange() async throws {
        let imds = TestIMDS()
        let host = FakeHost()
        host.failBinds.store(true, ordering: .relaxed)
        let network = NetworkReconciler(store: imds.store, effects: host, ipv6: [ListenAddress(host: "::1", port: 1338)], linkLocalInterface: nil)
        await network.activate()
        let group = ServiceGroup(services: [network], logger: Logger(label: "test"))
        let running = Task { try await group.run() }
        try await Self.setIPv6(imds, .enabled)
        try await Self.wait(host, count: 1)
        #expect(host.events == ["bind-failed ::1"])
        host.failBinds.store(false, ordering: .relaxed)
        let id = imds.store.snapshot.primaryInstanceID
        var o = imds.instance.options
        o.httpPutResponseHopLimit = 3
        try await imds.store.apply([.setOptions(instanceID: id, o)])
        try await Self.wait(host, count: 2)
        #expect(host.events == ["bind-failed ::1", "start ::1 1338"])
        await group.triggerGracefulShutdown()
        try await running.value
        #expect(host.events.last == "stop ::1 1338")
    }

    /// The decision table: start what is off when IPv6 is wanted, stop what runs when not.
    @Test func planDecidesPerAddress() {
        typealias G = NetworkReconciler.Gated
        let off = G(requested: ListenAddress(host: "::1", port: 0), port: 41000, bound: nil)
        let on = G(requested: ListenAddress(host: "fd00:ec2::254", port: 80), port: 80, bound: ListenAddress(host: "fd00:ec2::254", port: 80))
        #expect(NetworkReconciler.plan(wantIPv6: true, [off, on]) == [.start(index: 0, ListenAddress(host: "::1", port: 41000))])
        #expect(NetworkReconciler.plan(wantIPv6: false, [off, on]) == [.stop(index: 1, ListenAddress(host: "fd00:ec2::254", port: 80))])
        #expect(NetworkReconciler.plan(wantIPv6: false, [off]).isEmpty)
        #expect(NetworkReconciler.plan(wantIPv6: true, [on]).isEmpty)
    }

    /// Only batches that can change what is wanted wake the reconciler.
    @Test func onlyOptionLaunchStateAndReloadBatchesAreReconciled() {
        let snapshot = TestIMDS().store.snapshot
        let id = snapshot.primaryInstanceID
        func update(_ changes: [StoreChange], reconfigured: Bool = false) -> StoreUpdate {
            StoreUpdate(revision: 2, changes: changes, reconfigured: reconfigured, snapshot: snapshot)
        }
        #expect(NetworkReconciler.mayChangeIPv6(update([.setOptions(instanceID: id, snapshot.primary.options)])))
        #expect(NetworkReconciler.mayChangeIPv6(update([], reconfigured: true)))
        #expect(!NetworkReconciler.mayChangeIPv6(update([.setTags(instanceID: id, []), .invalidateTokens(instanceID: id), .resetFaults])))
    }
}
