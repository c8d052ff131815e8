import IMDSCore

/// EC2's limits on tags.
public enum TagRules {
    public static let maxTagsPerResource = 50
    public static let maxKeyLength = 128
    public static let maxValueLength = 256

    /// Why a tag cannot be stored, or nil.
    public static func problem(key: String, value: String) -> String? {
        if key.isEmpty { return "Tag key must not be empty" }
        if key.count > maxKeyLength { return "Tag key exceeds the maximum length of \(maxKeyLength) characters" }
        if value.count > maxValueLength { return "Tag value exceeds the maximum length of \(maxValueLength) characters" }
        if key.lowercased().hasPrefix("aws:") { return "Tag keys starting with 'aws:' are reserved for internal use" }
        return nil
    }

    /// Whether a key can appear under `tags/instance/` (letters, digits, `+ - = . , _ : @`; not `.`,
    /// `..` or `_index`).
    public static func isMetadataSafe(_ key: String) -> Bool {
        guard !key.isEmpty, key != ".", key != "..", key != "_index" else { return false }
        return key.unicodeScalars.allSatisfy { c in
            (c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || (c >= "0" && c <= "9") || "+-=.,_:@".unicodeScalars.contains(c)
        }
    }
}

/// Launch-time checks of the account's `HttpTokensEnforced` setting.
public enum LaunchPolicy {
    /// Why the account's defaults forbid launching `instance`, or nil. With `HttpTokensEnforced`
    /// enabled, an instance that would launch with IMDSv1 allowed (`HttpTokens=optional`) is refused.
    public static func violation(instance: Instance, accountDefaults: AccountDefaults) -> String? {
        guard accountDefaults.httpTokensEnforced == .enabled else { return nil }
        let options = LaunchOptions.resolve(instance: instance, accountDefaults: accountDefaults)
        guard options.httpTokens == .optional else { return nil }
        return "instance \(instance.instanceID) would launch with http-tokens optional, but the account defaults have http-tokens-enforced enabled: set instance.metadata-options.http-tokens: required (or account-defaults.http-tokens: required)"
    }
}
