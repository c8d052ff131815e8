/// A value computed per request (credentials rotate; the v1 and v2 deliveries differ).
public enum DynamicValue: Sendable, Equatable {
    /// `iam/info`.
    case iamInfo
    /// `iam/security-credentials/<role>`, or the `-extended` variant with `AccountId`.
    case roleCredentials(extended: Bool)
    /// `identity-credentials/ec2/info`.
    case identityCredentialsInfo
    /// `identity-credentials/ec2/security-credentials/ec2-instance`.
    case identityCredentials
}

/// A leaf's content.
public enum LeafValue: Sendable, Equatable {
    /// Text served as `text/plain` (JSON documents included, as EC2 does).
    case text(String)
    /// Raw bytes served as `application/octet-stream` (user-data).
    case bytes([UInt8])
    /// Computed at request time.
    case dynamic(DynamicValue)

    /// Whether a sub-path below this leaf is a 404 (always) — kept for clarity in lookups.
    var isJSON: Bool {
        if case .text(let t) = self { return t.hasPrefix("{") || t.hasPrefix("[") }
        return true
    }
}

/// A node of the metadata tree.
public indirect enum MetadataNode: Sendable, Equatable {
    case directory(MetadataDirectory)
    case leaf(LeafValue)

    public static func text(_ s: String) -> MetadataNode { .leaf(.text(s)) }
}

/// A directory: children by name, with an optional explicit listing order and display names.
public struct MetadataDirectory: Sendable, Equatable {
    public var children: [String: MetadataNode]
    /// Listing order; alphabetical when nil.
    public var order: [String]?
    /// Names shown in the listing instead of `name` / `name/` (e.g. `0=my-key` for `public-keys/0/`).
    public var displayNames: [String: String]

    public init(_ children: [String: MetadataNode] = [:], order: [String]? = nil, displayNames: [String: String] = [:]) {
        self.children = children
        self.order = order
        self.displayNames = displayNames
    }

    /// Names in listing order.
    public var orderedNames: [String] {
        if let order { return order.filter { children[$0] != nil } + children.keys.filter { !order.contains($0) }.sorted() }
        return children.keys.sorted()
    }

    /// The listing line for a child: its display name, or `name/` for directories.
    public func listingEntry(_ name: String) -> String {
        if let d = displayNames[name] { return d }
        if case .directory = children[name] { return name + "/" }
        return name
    }

    /// Sets `node` at `path` (components), creating directories on the way; nil removes.
    public mutating func set(_ path: ArraySlice<String>, _ node: MetadataNode?) {
        guard let first = path.first else { return }
        if path.count == 1 {
            children[first] = node
            if node == nil { displayNames[first] = nil }
            return
        }
        var sub: MetadataDirectory
        if case .directory(let existing) = children[first] { sub = existing } else { sub = MetadataDirectory() }
        sub.set(path.dropFirst(), node)
        children[first] = .directory(sub)
    }
}
