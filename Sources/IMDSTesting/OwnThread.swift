import Foundation

/// Runs blocking work (waiting for a child process, reading its pipe, a blocking socket exchange)
/// on a thread of its own, never on one of the Swift concurrency pool's threads. The pool has one
/// thread per core: with two of them blocked on a 2-core machine, every test running in parallel
/// stalls, and a client's request waits unsent until its read timeout runs out.
public func onOwnThread<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { c in Thread.detachNewThread { c.resume(returning: body()) } }
}

/// A value that is not `Sendable` (a `Process`, a `FileHandle`) handed to ``onOwnThread(_:)``,
/// which alone uses it meanwhile.
public struct UncheckedSendable<T>: @unchecked Sendable {
    public let value: T
    public init(_ value: T) { self.value = value }
}
