import Foundation

/// Turns the short forms people type into full IMDS paths.
///
/// | Input | Path |
/// |---|---|
/// | `instance-id` | `/latest/meta-data/instance-id` |
/// | `meta-data/instance-id` | `/latest/meta-data/instance-id` |
/// | `/latest/meta-data/instance-id` | unchanged |
/// | `user-data`, `dynamic/instance-identity/document` | under `/latest/` |
/// | `2021-03-23/meta-data/ami-id` | `/2021-03-23/meta-data/ami-id` |
/// | `http://169.254.169.254/latest/meta-data/` | `/latest/meta-data/` (the URL's path) |
/// | `/` | `/` (the API version list) |
/// | empty | `/latest/meta-data/` |
public enum IMDSPath {
    /// The full origin-form path for `input`.
    public static func normalize(_ input: String) -> String {
        var p = Substring(input.trimmingCharacters(in: .whitespacesAndNewlines))
        for scheme in ["http://", "https://"] where p.lowercased().hasPrefix(scheme) {
            let afterScheme = p.dropFirst(scheme.count)
            p = afterScheme.firstIndex(of: "/").map { afterScheme[$0...] } ?? "/"
        }
        if p == "/" { return "/" }
        while p.hasPrefix("/") { p = p.dropFirst() }
        if p.isEmpty { return "/latest/meta-data/" }
        let first = p.split(separator: "/", maxSplits: 1).first.map(String.init) ?? ""
        if first == "latest" || isVersion(first) { return "/" + p }
        if ["meta-data", "user-data", "dynamic", "api"].contains(first) { return "/latest/" + p }
        return "/latest/meta-data/" + p
    }

    /// `1.0` or `YYYY-MM-DD`.
    static func isVersion(_ s: String) -> Bool {
        if s == "1.0" { return true }
        let u = Array(s.utf8)
        guard u.count == 10, u[4] == 45, u[7] == 45 else { return false }
        return u.enumerated().allSatisfy { i, c in i == 4 || i == 7 || (c >= 48 && c <= 57) }
    }

    /// `path` with exactly one trailing slash (directory form).
    public static func directory(_ path: String) -> String {
        let p = normalize(path)
        return p.hasSuffix("/") ? p : p + "/"
    }
}
