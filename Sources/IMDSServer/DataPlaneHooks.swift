import IMDSCore

/// Observability hooks on the data plane: one call when a connection is accepted (before its
/// request arrives, so the peer process can still be found), one after each response.
public struct DataPlaneHooks: Sendable {
    /// Called on the event loop when a connection becomes active, with this server's end and the
    /// client's end. Must not block; the value it returns is handed to ``completed`` for that
    /// connection's request.
    public var accepted: @Sendable (_ local: PeerAddress?, _ remote: PeerAddress?) -> (any Sendable)?
    /// ``accepted`` for the connections of one accept burst, in order (the lean loop accepts what
    /// is queued, then hands the burst over at once: caller attribution looks all of them up with
    /// one netlink exchange). Must return one value per connection; nil: ``accepted`` is called
    /// for each.
    public var acceptedBatch: (@Sendable (_ ends: [(local: PeerAddress?, remote: PeerAddress?)]) -> [(any Sendable)?])?
    /// Called after every data-plane response with the request, the response, the seconds from the
    /// request head to the response, and what ``accepted`` returned.
    public var completed: @Sendable (_ request: IMDSRequest, _ response: IMDSResponse, _ seconds: Double, _ connection: (any Sendable)?) -> Void

    /// Called before a response is written, with what ``accepted`` returned. Returning `true` holds
    /// the response (the event loop is not blocked) until the closure passed in is called, from any
    /// thread; the hook must call it exactly once, and soon (caller attribution uses this, bounded,
    /// so that a short-lived client is still running when its process is looked up).
    public var hold: (@Sendable (_ connection: (any Sendable)?, _ resume: @escaping @Sendable () -> Void) -> Bool)?
    /// Called on the event loop just before a response is written (by a listener that calls
    /// ``completed`` after the write), with what ``accepted`` returned.
    public var writing: (@Sendable (_ connection: (any Sendable)?) -> Void)?

    public init(
        accepted: @escaping @Sendable (_ local: PeerAddress?, _ remote: PeerAddress?) -> (any Sendable)?,
        completed: @escaping @Sendable (_ request: IMDSRequest, _ response: IMDSResponse, _ seconds: Double, _ connection: (any Sendable)?) -> Void,
        hold: (@Sendable (_ connection: (any Sendable)?, _ resume: @escaping @Sendable () -> Void) -> Bool)? = nil,
        writing: (@Sendable (_ connection: (any Sendable)?) -> Void)? = nil,
        acceptedBatch: (@Sendable (_ ends: [(local: PeerAddress?, remote: PeerAddress?)]) -> [(any Sendable)?])? = nil
    ) {
        self.accepted = accepted
        self.acceptedBatch = acceptedBatch
        self.completed = completed
        self.hold = hold
        self.writing = writing
    }
}
