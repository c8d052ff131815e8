import Synchronization

/// A value computed the first time it is asked for and then kept: how an instance's metadata tree
/// (and its signed identity document) costs nothing until a caller of that instance arrives.
///
/// Thread-safe without holding a lock across the work: the lock only guards reading and installing
/// the value. Two threads that ask at once may both compute it; the first to install wins and both
/// return that one, so every reader of one `RenderOnce` sees the same value. A value that depends
/// on inputs that change gets a new `RenderOnce` with the change (the old one is left to the
/// snapshots still holding it).
///
/// ```swift
/// var rendered = RenderOnce<MetadataDirectory>()
/// let tree = rendered.value { MetadataTreeBuilder.build(instance: i, tags: [], tagsVisible: false, launchTime: t) }
/// ```
public final class RenderOnce<Value: Sendable>: Sendable {
    private let slot = Mutex<Value?>(nil)

    public init() {}

    /// Whether the value has been computed.
    public var isRendered: Bool { slot.withLock { $0 != nil } }

    /// The value: `make()`'s result the first time, the same value every later time. `make` runs
    /// with no lock held.
    public func value(_ make: () -> Value) -> Value {
        if let v = slot.withLock({ $0 }) { return v }
        let made = make()
        return slot.withLock { slot in
            if let v = slot { return v }
            slot = made
            return made
        }
    }
}
