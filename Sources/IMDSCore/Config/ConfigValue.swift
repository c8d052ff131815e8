import Foundation
import Yams

/// A parsed config document before it is checked: YAML and JSON both become this.
public indirect enum ConfigValue: Sendable {
    case scalar(String, line: Int?)
    case null(line: Int?)
    case sequence([ConfigValue], line: Int?)
    case mapping([(key: String, value: ConfigValue)], line: Int?)

    var line: Int? {
        switch self {
        case .scalar(_, let l), .null(let l), .sequence(_, let l), .mapping(_, let l): l
        }
    }

    var kindDescription: String {
        switch self {
        case .scalar: "a single value"
        case .null: "null"
        case .sequence: "a list"
        case .mapping: "a mapping"
        }
    }

    /// Parses YAML (JSON documents are YAML too, but `.json` files go through ``parseJSON(_:)``).
    static func parseYAML(_ text: String) throws(ConfigError) -> ConfigValue {
        let node: Node?
        do {
            node = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            throw ConfigError(path: nil, line: nil, message: "not valid YAML: \(Self.describe(error))")
        } catch {
            throw ConfigError(path: nil, line: nil, message: "not valid YAML: \(error)")
        }
        guard let node else { return .mapping([], line: 1) }
        return try convert(node)
    }

    private static func describe(_ error: YamlError) -> String {
        let text = "\(error)"
        // Yams prints a multi-line excerpt; keep the first line to stay one paragraph.
        return text.split(separator: "\n").first.map(String.init) ?? text
    }

    private static func convert(_ node: Node) throws(ConfigError) -> ConfigValue {
        let line = node.mark.map { $0.line }
        switch node {
        case .scalar(let s):
            if s.style == .plain, ["", "~", "null", "Null", "NULL"].contains(s.string) { return .null(line: line) }
            return .scalar(s.string, line: line)
        case .sequence(let seq):
            var items: [ConfigValue] = []
            for n in seq { items.append(try convert(n)) }
            return .sequence(items, line: line)
        case .mapping(let map):
            var pairs: [(key: String, value: ConfigValue)] = []
            for (k, v) in map {
                guard case .scalar(let ks) = k else {
                    throw ConfigError(path: nil, line: k.mark?.line, message: "mapping keys must be plain text")
                }
                if pairs.contains(where: { $0.key == ks.string }) {
                    throw ConfigError(path: nil, line: k.mark?.line, message: "duplicate key '\(ks.string)'")
                }
                pairs.append((ks.string, try convert(v)))
            }
            return .mapping(pairs, line: line)
        case .alias:
            throw ConfigError(path: nil, line: line, message: "YAML aliases are not supported")
        }
    }

    /// Parses JSON, keeping key order.
    static func parseJSON(_ data: Data) throws(ConfigError) -> ConfigValue {
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
        } catch {
            throw ConfigError(path: nil, line: nil, message: "not valid JSON: \(error.localizedDescription)")
        }
        // JSONSerialization loses key order; recover it by scanning keys in document order is overkill
        // for a config file, so mappings are sorted, which only affects the order of error messages.
        return convertJSON(object)
    }

    private static func convertJSON(_ any: Any) -> ConfigValue {
        switch any {
        case let d as [String: Any]:
            return .mapping(d.keys.sorted().map { ($0, convertJSON(d[$0]!)) }, line: nil)
        case let a as [Any]:
            return .sequence(a.map(convertJSON), line: nil)
        case is NSNull:
            return .null(line: nil)
        case let n as NSNumber:
            #if canImport(Darwin)
            if CFGetTypeID(n) == CFBooleanGetTypeID() { return .scalar(n.boolValue ? "true" : "false", line: nil) }
            #else
            if type(of: n) != NSNumber.self || String(cString: n.objCType) == "c" {
                return .scalar(n.boolValue ? "true" : "false", line: nil)
            }
            #endif
            return .scalar(n.stringValue, line: nil)
        case let s as String:
            return .scalar(s, line: nil)
        case let b as Bool:
            return .scalar(b ? "true" : "false", line: nil)
        default:
            return .scalar("\(any)", line: nil)
        }
    }
}

/// A config problem: which file, which key, what is wrong and what is allowed.
public struct ConfigError: Error, Sendable, CustomStringConvertible, Equatable {
    public var file: String?
    /// Dotted key path, e.g. `instance.metadata-options.http-tokens`.
    public var path: String?
    public var line: Int?
    public var message: String

    public init(file: String? = nil, path: String?, line: Int?, message: String) {
        self.file = file
        self.path = path
        self.line = line
        self.message = message
    }

    public var description: String {
        var where_ = file ?? "config"
        if let line { where_ += ", line \(line)" }
        if let path, !path.isEmpty { return "\(where_): \(path): \(message)" }
        return "\(where_): \(message)"
    }
}

/// Reads a mapping strictly: every key must be read, and what is left over is reported by name.
struct ConfigMap {
    let path: String
    let pairs: [(key: String, value: ConfigValue)]
    let line: Int?
    private(set) var consumed: Set<String> = []

    init(_ value: ConfigValue, path: String) throws(ConfigError) {
        guard case .mapping(let pairs, let line) = value else {
            throw ConfigError(path: path, line: value.line, message: "expected a mapping, found \(value.kindDescription)")
        }
        self.path = path
        self.pairs = pairs
        self.line = line
    }

    func child(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    mutating func value(_ key: String) -> ConfigValue? {
        consumed.insert(key)
        guard let v = pairs.first(where: { $0.key == key })?.value else { return nil }
        if case .null = v { return nil }
        return v
    }

    /// - Parameter secret: the value is a secret: an error about it never repeats it.
    mutating func string(_ key: String, pattern: ((String) -> Bool)? = nil, expected: String? = nil, secret: Bool = false) throws(ConfigError) -> String? {
        guard let v = value(key) else { return nil }
        guard case .scalar(let s, let line) = v else {
            throw ConfigError(path: child(key), line: v.line, message: "expected \(expected ?? "text"), found \(v.kindDescription)")
        }
        if let pattern, !pattern(s) {
            let shown = secret ? "the value (not shown: it is a secret)" : "'\(s)'"
            throw ConfigError(path: child(key), line: line, message: "\(shown) is not valid (expected \(expected ?? "a valid value"))")
        }
        return s
    }

    mutating func choice(_ key: String, _ allowed: [String]) throws(ConfigError) -> String? {
        guard let s = try string(key) else { return nil }
        guard allowed.contains(s) else {
            throw ConfigError(
                path: child(key), line: pairs.first { $0.key == key }?.value.line,
                message: "'\(s)' is not allowed (allowed: \(allowed.joined(separator: ", ")))")
        }
        return s
    }

    mutating func int(_ key: String, range: ClosedRange<Int>) throws(ConfigError) -> Int? {
        guard let s = try string(key, expected: "an integer") else { return nil }
        guard let n = Int(s), range.contains(n) else {
            throw ConfigError(
                path: child(key), line: pairs.first { $0.key == key }?.value.line,
                message: "'\(s)' is not allowed (allowed: an integer from \(range.lowerBound) to \(range.upperBound))")
        }
        return n
    }

    mutating func bool(_ key: String) throws(ConfigError) -> Bool? {
        guard let s = try string(key, expected: "true or false") else { return nil }
        switch s.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default:
            throw ConfigError(path: child(key), line: pairs.first { $0.key == key }?.value.line,
                              message: "'\(s)' is not allowed (allowed: true, false)")
        }
    }

    /// A duration such as `6h`, `90m`, `30s`, `1h30m` or a number of seconds.
    mutating func duration(_ key: String, range: ClosedRange<Int>) throws(ConfigError) -> Int? {
        guard let s = try string(key, expected: "a duration") else { return nil }
        guard let secs = ConfigMap.parseDuration(s), range.contains(secs) else {
            throw ConfigError(
                path: child(key), line: pairs.first { $0.key == key }?.value.line,
                message: "'\(s)' is not allowed (allowed: a duration such as 90s, 10m or 6h, from \(range.lowerBound)s to \(range.upperBound)s)")
        }
        return secs
    }

    /// The longest duration or time offset accepted anywhere (100 years): far beyond any real use,
    /// and small enough that adding it to any date keeps every time computation in range.
    static let maxDurationSeconds = 100 * 366 * 86400

    /// Seconds in `6h`, `90m`, `30s`, `2d`, `1h30m` or a plain number of seconds; nil when malformed
    /// or longer than ``maxDurationSeconds`` (never traps, whatever the digits).
    static func parseDuration(_ text: String) -> Int? {
        let s = text.trimmingCharacters(in: .whitespaces)
        var total = 0, current: Int? = nil, sawUnit = false
        for c in s.utf8 {
            if c >= 48 && c <= 57 {
                let digit = Int(c - 48)
                // Any number with more digits than the limit is refused before it can overflow.
                let n = (current ?? 0) * 10 + digit
                guard n <= maxDurationSeconds else { return nil }
                current = n
                continue
            }
            guard let n = current else { return nil }
            let unit: Int
            switch c {
            case UInt8(ascii: "h"): unit = 3600
            case UInt8(ascii: "m"): unit = 60
            case UInt8(ascii: "s"): unit = 1
            case UInt8(ascii: "d"): unit = 86400
            default: return nil
            }
            total += n * unit  // n ≤ max and unit ≤ 86400, total ≤ max: no overflow
            guard total <= maxDurationSeconds else { return nil }
            current = nil
            sawUnit = true
        }
        if !sawUnit { return current }  // a plain number of seconds
        return current == nil ? total : nil
    }

    mutating func stringList(_ key: String, element: ((String) -> Bool)? = nil, expected: String = "text") throws(ConfigError) -> [String]? {
        guard let v = value(key) else { return nil }
        let items: [ConfigValue]
        switch v {
        case .sequence(let seq, _): items = seq
        case .scalar: items = [v]  // a single value is a list of one
        default:
            throw ConfigError(path: child(key), line: v.line, message: "expected a list of \(expected), found \(v.kindDescription)")
        }
        var out: [String] = []
        for (i, item) in items.enumerated() {
            guard case .scalar(let s, let line) = item else {
                throw ConfigError(path: "\(child(key))[\(i)]", line: item.line, message: "expected \(expected), found \(item.kindDescription)")
            }
            if let element, !element(s) {
                throw ConfigError(path: "\(child(key))[\(i)]", line: line, message: "'\(s)' is not valid (expected \(expected))")
            }
            out.append(s)
        }
        return out
    }

    mutating func map(_ key: String) throws(ConfigError) -> ConfigMap? {
        guard let v = value(key) else { return nil }
        return try ConfigMap(v, path: child(key))
    }

    /// Fails if the mapping has keys that were never read.
    func finish(allowed: [String]? = nil) throws(ConfigError) {
        for (key, value) in pairs where !consumed.contains(key) {
            let names = (allowed ?? consumed.sorted()).joined(separator: ", ")
            throw ConfigError(path: child(key), line: value.line, message: "unknown key '\(key)' (allowed keys here: \(names))")
        }
    }
}
