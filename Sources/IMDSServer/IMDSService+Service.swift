import ServiceLifecycle

extension IMDSService: Service {
    /// Serves until the service group shuts down gracefully (or is cancelled), then stops
    /// accepting, lets in-flight requests finish and closes every listener. Call ``start()`` first,
    /// so that a port that cannot be bound is reported before the group runs.
    public func run() async throws {
        try? await gracefulShutdown()
        await shutdown()
    }
}
