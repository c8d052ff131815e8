import Foundation
#if canImport(Glibc)
import Glibc
#endif
import IMDSCore
import Testing

/// Prints what a fleet costs (docs/fleet.md); asserts nothing about time. Off unless
/// `IMDS_FLEET_REPORT=1`:
///
///     IMDS_FLEET_REPORT=1 swift test --filter FleetCostReport
@Suite("Fleet cost report", .enabled(if: ProcessInfo.processInfo.environment["IMDS_FLEET_REPORT"] == "1"))
struct FleetCostReport {
    static func ms(_ d: Duration) -> Double { Double(d.components.seconds) * 1e3 + Double(d.components.attoseconds) / 1e15 }

    /// The resident size after glibc's `malloc_trim(0)` handed freed pages back, so that it
    /// shows what is in use rather than what earlier phases freed.
    static func residentBytes() -> Int {
        #if canImport(Glibc)
        typealias Trim = @convention(c) (Int) -> Int32
        if let sym = dlsym(dlopen(nil, RTLD_NOW), "malloc_trim") { _ = unsafeBitCast(sym, to: Trim.self)(0) }
        #endif
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8),
            let pages = text.split(separator: " ").dropFirst().first.flatMap({ Int($0) })
        else { return 0 }
        return pages * 4096
    }

    static func specs(_ n: Int, template: Instance) -> [StoreChange] {
        (0..<n).map { k in
            .launch(LaunchSpec(
                instanceID: String(format: "i-%017x", k + 1), reservationID: "r-0123456789abcdef0", imageID: template.amiID,
                instanceType: template.instanceType, privateIPv4: "10.1.\(k / 250).\(k % 250 + 4)",
                options: MetadataOptions.ec2Defaults, launchTime: Date(timeIntervalSince1970: 1_767_323_045)))
        }
    }

    @Test func tenThousandInstances() async throws {
        let clock = ContinuousClock()
        var config = IMDSConfig.embeddedDefault
        config.instance.subnetIPv4CIDROverride = "10.0.0.0/16"
        for n in [10, 10_000] {
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("imds-fleet-report-\(UUID().uuidString)").path
            defer { try? FileManager.default.removeItem(atPath: dir) }
            do {
                let store = try StateDirectory.open(dir, config: config)
                let all = Self.specs(n, template: config.instance)
                for chunk in stride(from: 0, to: n, by: 1000) { try await store.apply(Array(all[chunk..<min(n, chunk + 1000)])) }
                store.close()
            }
            let before = Self.residentBytes()
            let t0 = clock.now
            let store = try StateDirectory.open(dir, config: config)
            let ready = clock.now - t0
            let after = Self.residentBytes()
            let snapshot = store.snapshot
            let rendered = snapshot.allInstances.filter(\.isTreeRendered).count
            let lookups = 100_000
            // Callers spread over the whole fleet, formatted before the clock starts.
            let callers = (0..<1000).map { j in let k = (j * 7919) % n; return "10.1.\(k / 250).\(k % 250 + 4)" }
            let t1 = clock.now
            var found = 0
            for k in 0..<lookups where snapshot.instanceID(forCaller: callers[k % callers.count]) != nil { found += 1 }
            let lookup = clock.now - t1
            let changes = 200
            let id = String(format: "i-%017x", 1)
            let t2 = clock.now
            for _ in 0..<changes { try await store.apply([.invalidateTokens(instanceID: id)]) }
            let change = clock.now - t2
            print(String(format: "fleet: %6d instances: ready %.1f ms from the embedded store; caller lookup %.3f µs; one change %.3f ms (incl. fsync); resident +%.2f KiB per idle instance; %d trees rendered at open",
                         n, Self.ms(ready), Self.ms(lookup) * 1e3 / Double(lookups), Self.ms(change) / Double(changes),
                         Double(max(0, after - before)) / 1024 / Double(n), rendered))
            #expect(found == lookups)
            store.close()
        }
    }
}
