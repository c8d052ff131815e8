/// The answer to a `DELETE` of events or faults: how many were removed (all of them), or which one.
public struct AdminRemoval: Codable, Sendable, Equatable {
    public enum Removed: Codable, Sendable, Equatable, CustomStringConvertible {
        case count(Int)
        case id(String)

        public init(from decoder: any Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let n = try? c.decode(Int.self) { self = .count(n) } else { self = .id(try c.decode(String.self)) }
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.singleValueContainer()
            switch self {
            case .count(let n): try c.encode(n)
            case .id(let s): try c.encode(s)
            }
        }

        public var description: String {
            switch self {
            case .count(let n): String(n)
            case .id(let s): s
            }
        }
    }

    public var removed: Removed
    public init(removed: Removed) { self.removed = removed }
}

/// The answer to `POST /admin/v1/tokens/invalidate`.
public struct AdminTokensInvalidated: Codable, Sendable, Equatable {
    public var instanceID: String
    public var invalidated: Bool

    public init(instanceID: String, invalidated: Bool = true) {
        self.instanceID = instanceID
        self.invalidated = invalidated
    }

    enum CodingKeys: String, CodingKey {
        case invalidated
        case instanceID = "instance-id"
    }
}

/// The request body of `POST /admin/v1/tokens/invalidate` (optional: the server's instance by default).
public struct AdminInstanceSelector: Codable, Sendable, Equatable {
    public var instanceID: String?
    public init(instanceID: String? = nil) { self.instanceID = instanceID }

    enum CodingKeys: String, CodingKey {
        case instanceID = "instance-id"
    }
}
