import Foundation

/// `dynamic/instance-identity/document`, decoded.
public struct InstanceIdentityDocument: Sendable, Equatable, Decodable {
    public var accountId: String
    public var architecture: String
    public var availabilityZone: String
    public var billingProducts: [String]?
    public var devpayProductCodes: [String]?
    public var marketplaceProductCodes: [String]?
    public var imageId: String
    public var instanceId: String
    public var instanceType: String
    public var kernelId: String?
    public var pendingTime: Date?
    public var privateIp: String?
    public var ramdiskId: String?
    public var region: String
    public var version: String
}

/// `spot/instance-action`: the pending interruption of a Spot Instance.
public struct SpotInstanceAction: Sendable, Equatable, Decodable {
    /// `hibernate`, `stop` or `terminate`.
    public var action: String
    /// When the action happens.
    public var time: Date
}

extension IMDSClient {
    /// `meta-data/instance-id`.
    public func instanceID() async throws -> String { try await string("meta-data/instance-id") }

    /// `meta-data/placement/availability-zone`.
    public func availabilityZone() async throws -> String { try await string("meta-data/placement/availability-zone") }

    /// The region, read from the identity document's `region` field (as go-v2 `GetRegion` does;
    /// it is present on every API version, unlike `placement/region`).
    public func region() async throws -> String { try await identityDocument().region }

    /// `dynamic/instance-identity/document`, decoded.
    public func identityDocument() async throws -> InstanceIdentityDocument {
        try IMDSJSON.decode(InstanceIdentityDocument.self, from: try await bytes("dynamic/instance-identity/document"),
                            what: "the instance identity document")
    }

    /// The instance's tags (`meta-data/tags/instance/`), or nil when IMDS does not expose them
    /// (`InstanceMetadataTags` is disabled: the listing answers 404).
    public func tags() async throws -> [String: String]? {
        let keys: [String]
        do {
            keys = try await list("meta-data/tags/instance/")
        } catch IMDSClientError.httpError(status: 404, _) {
            return nil
        }
        var tags: [String: String] = [:]
        for key in keys {
            let escaped = key.addingPercentEncoding(withAllowedCharacters: IMDSJSON.pathAllowed) ?? key
            tags[key] = try await string("meta-data/tags/instance/" + escaped)
        }
        return tags
    }

    /// The user data bytes exactly as supplied at launch, or nil when the instance has none (404).
    public func userData() async throws -> [UInt8]? {
        do {
            return try await bytes("user-data")
        } catch IMDSClientError.httpError(status: 404, _) {
            return nil
        }
    }

    /// The pending Spot interruption, or nil when there is none (404).
    public func spotInstanceAction() async throws -> SpotInstanceAction? {
        let body: [UInt8]
        do {
            body = try await bytes("meta-data/spot/instance-action")
        } catch IMDSClientError.httpError(status: 404, _) {
            return nil
        }
        return try IMDSJSON.decode(SpotInstanceAction.self, from: body, what: "spot/instance-action")
    }
}

enum IMDSJSON {
    static let pathAllowed: CharacterSet = {
        var s = CharacterSet.alphanumerics
        s.insert(charactersIn: "-._~+=:@")
        return s
    }()

    static func decoder() -> JSONDecoder {
        let d = JSONDecoder()
        d.dateDecodingStrategy = .custom { decoder in
            let text = try decoder.singleValueContainer().decode(String.self)
            guard let date = parseISO8601(text) else {
                throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath,
                                                        debugDescription: "'\(text)' is not YYYY-MM-DDTHH:MM:SSZ"))
            }
            return date
        }
        return d
    }

    static func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8], what: String) throws -> T {
        do {
            return try decoder().decode(type, from: Data(bytes))
        } catch {
            throw IMDSClientError.invalidResponse("\(what) is not the expected JSON: \(error)")
        }
    }

    /// `YYYY-MM-DDTHH:MM:SSZ`, optionally with fractional seconds (as IMDS and the SDKs write times).
    static func parseISO8601(_ text: String) -> Date? {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        if let d = f.date(from: text) { return d }
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.date(from: text)
    }
}
