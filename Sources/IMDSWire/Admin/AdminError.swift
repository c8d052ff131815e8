/// `{"error": {"code": …, "message": …}}`: how the admin and observability APIs refuse a request.
public struct AdminError: Codable, Sendable, Equatable, Error {
    public struct Detail: Codable, Sendable, Equatable {
        /// Machine-readable, e.g. `InvalidParameterValue`, `NotFound`, `MethodNotAllowed`.
        public var code: String
        public var message: String
    }

    public var error: Detail

    public init(code: String, message: String) {
        error = Detail(code: code, message: message)
    }
}
