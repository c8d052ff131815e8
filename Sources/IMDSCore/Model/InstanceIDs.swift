import Foundation

/// EC2 instance id syntax.
public enum InstanceIDs {
    /// `i-` followed by 8 or 17 lower-case hex digits.
    public static func isWellFormed(_ id: String) -> Bool {
        let u = Array(id.utf8)
        guard u.count == 10 || u.count == 19, u[0] == UInt8(ascii: "i"), u[1] == UInt8(ascii: "-") else { return false }
        return u.dropFirst(2).allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }
    }
}
