import Foundation
import IMDSCore

/// Everything changed through the control plane, as it is written to `<state-dir>/control-plane.json`.
public struct ControlPlaneState: Sendable, Equatable, Codable {
    public struct Tag: Sendable, Equatable, Codable {
        public var key: String
        public var value: String
        public init(key: String, value: String) {
            self.key = key
            self.value = value
        }
    }

    /// One instance's runtime state.
    public struct InstanceRecord: Sendable, Equatable, Codable {
        public var metadataOptions: MetadataOptions
        public var tags: [Tag]
        public init(metadataOptions: MetadataOptions, tags: [Tag]) {
            self.metadataOptions = metadataOptions
            self.tags = tags
        }
    }

    /// The file format; bumped on incompatible changes.
    public var format: Int
    /// Counts acknowledged changes; every write increments it.
    public var sequence: Int
    /// Account defaults set through `ModifyInstanceMetadataDefaults`; nil when never set that way
    /// (then the config file's `account-defaults:` apply).
    public var accountDefaults: AccountDefaults?
    /// Per instance id.
    public var instances: [String: InstanceRecord]

    public static let currentFormat = 1
    /// The largest `sequence` a state file may hold (2^53, exact in every JSON reader).
    public static let maxSequence = 1 << 53

    public init(sequence: Int = 0, accountDefaults: AccountDefaults? = nil, instances: [String: InstanceRecord] = [:]) {
        self.format = Self.currentFormat
        self.sequence = sequence
        self.accountDefaults = accountDefaults
        self.instances = instances
    }

    /// Values the file may hold; anything else means the file was edited wrongly.
    func validate() -> String? {
        guard format == Self.currentFormat else { return "format \(format) is not supported (expected \(Self.currentFormat))" }
        // Each write adds 1; a bound far beyond any real count keeps that addition from overflowing.
        guard (0...Self.maxSequence).contains(sequence) else { return "sequence \(sequence) is not within 0...\(Self.maxSequence)" }
        if let h = accountDefaults?.httpPutResponseHopLimit, !MetadataOptions.hopLimitRange.contains(h) {
            return "accountDefaults.httpPutResponseHopLimit \(h) is not within 1...64"
        }
        for (id, r) in instances.sorted(by: { $0.key < $1.key }) {
            guard InstanceIDs.isWellFormed(id) else { return "'\(id)' is not an instance id" }
            guard MetadataOptions.hopLimitRange.contains(r.metadataOptions.httpPutResponseHopLimit) else {
                return "instances.\(id).metadataOptions.httpPutResponseHopLimit \(r.metadataOptions.httpPutResponseHopLimit) is not within 1...64"
            }
            guard r.tags.count <= TagRules.maxTagsPerResource else { return "instances.\(id) has more than \(TagRules.maxTagsPerResource) tags" }
            for t in r.tags where TagRules.problem(key: t.key, value: t.value) != nil {
                return "instances.\(id).tags: \(TagRules.problem(key: t.key, value: t.value)!)"
            }
        }
        return nil
    }
}

/// The state file could not be read: names the file and says what to do.
public struct StateFileError: Error, Sendable, CustomStringConvertible {
    public var path: String
    public var reason: String
    public var description: String {
        "state file \(path) is not valid: \(reason). Fix it, or move it away to start from the config file (changes made through the control plane would be lost)."
    }
}

/// Reads and writes the state file: JSON, written with ``AtomicFile`` (temporary file, fsync, rename),
/// so a crash leaves the previous or the new state, never a torn file.
public struct ControlPlaneStateStore: Sendable {
    public static let fileName = "control-plane.json"
    public let path: String

    public init(directory: String) {
        path = (directory as NSString).appendingPathComponent(Self.fileName)
    }

    /// The saved state, or nil when there is no file yet.
    public func load() throws(StateFileError) -> ControlPlaneState? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        guard let data = FileManager.default.contents(atPath: path) else { throw StateFileError(path: path, reason: "it cannot be read") }
        let state: ControlPlaneState
        do {
            state = try JSONDecoder().decode(ControlPlaneState.self, from: data)
        } catch let error as DecodingError {
            throw StateFileError(path: path, reason: Self.describe(error))
        } catch {
            throw StateFileError(path: path, reason: "\(error)")
        }
        if let problem = state.validate() { throw StateFileError(path: path, reason: problem) }
        return state
    }

    /// Writes `state` durably; returns once it is on disk.
    public func save(_ state: ControlPlaneState) throws(AtomicFile.WriteError) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        // Encoding these plain structs cannot fail; an empty object would be caught by `load`.
        let data = (try? encoder.encode(state)) ?? Data("{}".utf8)
        try AtomicFile.write(Array(data) + [0x0a], to: path)
    }

    static func describe(_ error: DecodingError) -> String {
        func at(_ path: [any CodingKey]) -> String {
            path.isEmpty ? "" : " at " + path.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
        }
        switch error {
        case .dataCorrupted(let c): return "not valid JSON\(at(c.codingPath))" + (c.underlyingError.map { " (\($0.localizedDescription))" } ?? "")
        case .keyNotFound(let k, let c): return "missing key '\(k.stringValue)'\(at(c.codingPath))"
        case .typeMismatch(_, let c): return "\(c.debugDescription)\(at(c.codingPath))"
        case .valueNotFound(_, let c): return "missing value\(at(c.codingPath))"
        @unknown default: return "\(error)"
        }
    }
}
