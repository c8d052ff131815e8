import Synchronization

/// A first-come-first-served lock for async code. The ticket is taken synchronously, so a caller's
/// order of calls is the order in which they enter (a data-plane ``PostgresInstanceStore/submit(_:)``
/// followed by an `apply` from the same task commits first). Never held across anything unbounded:
/// every database exchange under it has a deadline.
final class WriteGate: Sendable {
    struct State {
        var next: UInt64 = 0
        var serving: UInt64 = 0
        var waiting: [UInt64: CheckedContinuation<Void, Never>] = [:]
    }

    private let state = Mutex(State())

    /// A place in the queue; every ticket must be waited for and released exactly once.
    func ticket() -> UInt64 {
        state.withLock { s in
            defer { s.next += 1 }
            return s.next
        }
    }

    /// Returns once every earlier ticket was released.
    func wait(_ ticket: UInt64) async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let now = state.withLock { s -> Bool in
                if s.serving == ticket { return true }
                s.waiting[ticket] = c
                return false
            }
            if now { c.resume() }
        }
    }

    /// Lets the next ticket in.
    func release() {
        let next = state.withLock { s -> CheckedContinuation<Void, Never>? in
            s.serving += 1
            return s.waiting.removeValue(forKey: s.serving)
        }
        next?.resume()
    }
}
