import Synchronization

/// A first-come-first-served lock for async code. The ticket is taken synchronously, so a caller's
/// order of calls is the order in which they enter (a data-plane ``PostgresInstanceStore/submit(_:)``
/// followed by an `apply` from the same task commits first). A waiter gives up at its deadline (its
/// ticket is then skipped), so a write queued behind one that waits for an unanswering database ends
/// in an error at its own deadline, never later.
final class WriteGate: Sendable {
    struct State {
        var next: UInt64 = 0
        var serving: UInt64 = 0
        var waiting: [UInt64: CheckedContinuation<Bool, Never>] = [:]
        /// Tickets whose waiter gave up: skipped when their turn comes.
        var abandoned: Set<UInt64> = []
        /// The deadline timer of each waiting ticket.
        var timers: [UInt64: Task<Void, Never>] = [:]
    }

    private let state = Mutex(State())

    /// A place in the queue; every ticket must be waited for, and released exactly once when the
    /// wait returned `true`.
    func ticket() -> UInt64 {
        state.withLock { s in
            defer { s.next += 1 }
            return s.next
        }
    }

    /// Returns `true` once every earlier ticket was released or abandoned (the caller holds the gate
    /// and must ``release()`` it), or `false` at `deadline` if that had not happened by then (the
    /// ticket is abandoned; the caller must not release).
    func wait(_ ticket: UInt64, until deadline: ContinuousClock.Instant) async -> Bool {
        await withCheckedContinuation { (c: CheckedContinuation<Bool, Never>) in
            let now = state.withLock { s -> Bool? in
                if s.serving == ticket { return true }
                if ContinuousClock.now >= deadline {
                    s.abandoned.insert(ticket)
                    return false
                }
                s.waiting[ticket] = c
                s.timers[ticket] = Task { [self] in
                    try? await Task.sleep(until: deadline, clock: .continuous)
                    if !Task.isCancelled { giveUp(ticket) }
                }
                return nil
            }
            if let now { c.resume(returning: now) }
        }
    }

    /// Lets the next waiting ticket in (skipping abandoned ones).
    func release() {
        let next = state.withLock { s -> CheckedContinuation<Bool, Never>? in
            s.serving += 1
            while s.abandoned.remove(s.serving) != nil { s.serving += 1 }
            s.timers.removeValue(forKey: s.serving)?.cancel()
            return s.waiting.removeValue(forKey: s.serving)
        }
        next?.resume(returning: true)
    }

    /// Tickets queued behind the one being served (for tests and diagnostics).
    var queued: Int { state.withLock { $0.waiting.count } }

    private func giveUp(_ ticket: UInt64) {
        let waiter = state.withLock { s -> CheckedContinuation<Bool, Never>? in
            s.timers.removeValue(forKey: ticket)
            guard let c = s.waiting.removeValue(forKey: ticket) else { return nil }
            s.abandoned.insert(ticket)
            return c
        }
        waiter?.resume(returning: false)
    }
}
