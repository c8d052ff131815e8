import Foundation

/// The data plane as listeners run it: each request reads the store's current snapshot once and
/// is answered by the engine at the clock's time. The only write is one use of a counted fault,
/// submitted to the store (durable shortly after, without making the request wait for a disk).
/// With a `throttle:` configured it also owns each instance's request allowance.
public struct DataPlane: Sendable {
    public let engine: IMDSEngine
    public let store: any InstanceStore
    /// Each instance's allowance under the snapshot's ``StoreSnapshot/throttle``.
    public let requestBuckets: InstanceRequestBuckets

    public init(engine: IMDSEngine, store: any InstanceStore) {
        self.engine = engine
        self.store = store
        self.requestBuckets = InstanceRequestBuckets()
    }

    /// Answers one data-plane request.
    public func respond(to request: IMDSRequest) -> IMDSResponse {
        let store = self.store
        let buckets = requestBuckets
        let current = store.current  // one retain; the snapshot is borrowed from it
        let now = engine.clock.now()
        return engine.respond(
            to: request, snapshot: current.snapshot, now: now,
            consume: { id in (try? store.submit([.consumeFault(id: id)])) != nil },
            admit: { id, throttle in buckets.admit(id, throttle, now: now) })
    }

    /// The response for a request the transport could not parse (sent before any engine logic).
    public func malformedRequestResponse(status: Int = 400) -> IMDSResponse {
        engine.malformedRequestResponse(status: status)
    }
}
