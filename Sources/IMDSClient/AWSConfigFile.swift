import Foundation

/// The shared AWS config file (`~/.aws/config`), parsed as the SDKs parse it.
///
/// Sections are `[default]` and `[profile NAME]` (`[profile default]` also names the default
/// profile); `key = value` lines, `#` and `;` comments, and indented sub-properties (which IMDS
/// settings never use and which are skipped). Keys are case-sensitive, as in the SDKs.
///
/// ```swift
/// let file = AWSConfigFile(contents: "[profile ci]\nec2_metadata_service_endpoint_mode = IPv6\n")
/// file.profile("ci")?["ec2_metadata_service_endpoint_mode"]   // "IPv6"
/// ```
public struct AWSConfigFile: Sendable, Equatable {
    /// Profile name → its keys.
    public private(set) var profiles: [String: [String: String]] = [:]

    /// Parses the text of a config file. Malformed lines are ignored, as the SDKs do.
    public init(contents: String) {
        var current: String?
        var parentKey: String?
        for rawLine in contents.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
            let line = String(rawLine).replacingOccurrences(of: "\r", with: "")
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty || trimmed.hasPrefix("#") || trimmed.hasPrefix(";") { continue }
            if trimmed.hasPrefix("[") {
                parentKey = nil
                guard let close = trimmed.firstIndex(of: "]") else {
                    current = nil
                    continue
                }
                let name = trimmed[trimmed.index(after: trimmed.startIndex)..<close].trimmingCharacters(in: .whitespaces)
                let parts = name.split(separator: " ", omittingEmptySubsequences: true)
                if parts.count == 1 && parts[0] == "default" {
                    current = "default"
                } else if parts.count == 2 && parts[0] == "profile" {
                    current = String(parts[1])
                } else {
                    current = nil  // [sso-session x], [services x], or not a profile
                }
                if let current, profiles[current] == nil { profiles[current] = [:] }
                continue
            }
            guard let profile = current else { continue }
            // Indented lines continue the previous key's sub-properties (e.g. `s3 =\n  max_concurrent_requests = 10`).
            if line.first == " " || line.first == "\t", parentKey != nil { continue }
            guard let eq = trimmed.firstIndex(of: "=") else { continue }
            let key = trimmed[..<eq].trimmingCharacters(in: .whitespaces)
            var value = trimmed[trimmed.index(after: eq)...].trimmingCharacters(in: .whitespaces)
            // Inline comments need whitespace before `#` or `;`.
            for marker in [" #", "\t#", " ;", "\t;"] {
                if let r = value.range(of: marker) { value = value[..<r.lowerBound].trimmingCharacters(in: .whitespaces) }
            }
            guard !key.isEmpty else { continue }
            parentKey = value.isEmpty ? key : nil
            profiles[profile, default: [:]][key] = value
        }
    }

    /// The keys of a profile, or nil when the file has no such profile.
    public func profile(_ name: String) -> [String: String]? { profiles[name] }

    /// Reads the file the environment points at: `AWS_CONFIG_FILE`, else `$HOME/.aws/config`.
    /// A missing file is an empty config (as in the SDKs); an unreadable one is an error.
    public static func load(environment: [String: String]) throws -> AWSConfigFile {
        let path: String
        if let p = environment["AWS_CONFIG_FILE"], !p.isEmpty {
            path = p.hasPrefix("~/") ? (environment["HOME"] ?? NSHomeDirectory()) + p.dropFirst() : p
        } else {
            path = (environment["HOME"] ?? NSHomeDirectory()) + "/.aws/config"
        }
        guard FileManager.default.fileExists(atPath: path) else { return AWSConfigFile(contents: "") }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw IMDSClientError.invalidConfiguration("cannot read the AWS config file \(path)")
        }
        return AWSConfigFile(contents: String(decoding: data, as: UTF8.self))
    }

    /// The profile the environment selects: `AWS_PROFILE`, else `AWS_DEFAULT_PROFILE`, else `default`.
    public static func selectedProfile(environment: [String: String]) -> String {
        if let p = environment["AWS_PROFILE"], !p.isEmpty { return p }
        if let p = environment["AWS_DEFAULT_PROFILE"], !p.isEmpty { return p }
        return "default"
    }
}
