/// Something that answers HTTP requests asynchronously (the control plane).
public protocol AsyncResponder: Sendable {
    func respond(to request: IMDSRequest) async -> IMDSResponse
}
