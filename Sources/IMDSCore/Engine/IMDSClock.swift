import Foundation
import Synchronization

/// Wall-clock time, injected so that expiry and rotation can be tested.
public protocol IMDSClock: Sendable {
    func now() -> Date
}

/// The system's clock.
public struct SystemClock: IMDSClock {
    public init() {}
    public func now() -> Date { Date() }
}

/// A clock that moves only when told to (for tests).
public final class ManualClock: IMDSClock {
    private let current: Mutex<Date>
    public init(_ start: Date = Date(timeIntervalSince1970: 1_790_000_000)) { current = Mutex(start) }
    public func now() -> Date { current.withLock { $0 } }
    /// Moves the clock forward.
    public func advance(by seconds: TimeInterval) { current.withLock { $0 = $0.addingTimeInterval(seconds) } }
    public func set(_ date: Date) { current.withLock { $0 = date } }
}
