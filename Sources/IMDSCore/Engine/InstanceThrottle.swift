import Foundation
import Synchronization

/// `throttle:` in the config file: how many data-plane requests each instance may make, as EC2
/// throttles "on a per-instance basis" (its numbers are not published, so they are configurable).
/// A token bucket per instance: `burst` requests at once, refilled at `requestsPerSecond`; a
/// request beyond it gets EC2's `429 Too Many Requests` page. One instance's flood never uses
/// another's allowance. Off unless configured.
public struct InstanceThrottle: Sendable, Equatable {
    /// Sustained requests per second and instance.
    public var requestsPerSecond: Int
    /// Requests an idle instance may make at once (default: one second's worth).
    public var burst: Int

    public init(requestsPerSecond: Int, burst: Int? = nil) {
        self.requestsPerSecond = requestsPerSecond
        self.burst = burst ?? requestsPerSecond
    }

    /// The accepted range of both settings.
    public static let range = 1...1_000_000
}

/// The per-instance buckets of an ``InstanceThrottle``: the only state the data plane keeps for
/// throttling, owned by the ``DataPlane``. One short lock per request (no I/O, no allocation once
/// an instance has its bucket); at most one bucket per instance that has asked, so it is bounded
/// by the fleet's size.
public final class InstanceRequestBuckets: Sendable {
    struct Bucket {
        var tokens: Double
        var at: Date
    }

    private let buckets = Mutex<[String: Bucket]>([:])

    public init() {}

    /// Takes one request from `instanceID`'s bucket at `now`; false when it is empty (throttle it).
    public func admit(_ instanceID: String, _ throttle: InstanceThrottle, now: Date) -> Bool {
        let burst = Double(throttle.burst)
        let rate = Double(throttle.requestsPerSecond)
        return buckets.withLock { all in
            var b = all[instanceID] ?? Bucket(tokens: burst, at: now)
            let elapsed = max(0, now.timeIntervalSince(b.at))
            b.tokens = min(burst, b.tokens + elapsed * rate)
            b.at = now
            let admitted = b.tokens >= 1
            if admitted { b.tokens -= 1 }
            all[instanceID] = b
            return admitted
        }
    }
}
