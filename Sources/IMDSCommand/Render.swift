import IMDSWire

/// One-line renderings of the admin API's events and faults for `imds events` / `imds faults`.
enum Render {
    static func event(_ e: AdminEvent) -> String {
        let fields: [(String, String?)] = [
            ("action", e.action), ("time", e.time), ("code", e.code), ("description", e.description),
            ("not-before", e.notBefore), ("not-after", e.notAfter), ("not-before-deadline", e.notBeforeDeadline), ("state", e.state),
        ]
        let detail = fields.compactMap { key, value in value.map { "\(key)=\($0)" } }
        let when = e.active ? "active since \(e.at)" : "scheduled for \(e.at)"
        return "\(e.id)  \(e.type)  \(when)  \(detail.joined(separator: " "))"
    }

    static func fault(_ f: AdminFault) -> String {
        let probability = f.probability == f.probability.rounded() ? String(Int(f.probability)) : String(f.probability)
        var s = "\(f.id)  \(f.type)  path=\(f.path)  probability=\(probability)"
        if let ms = f.milliseconds { s += "  milliseconds=\(ms)" }
        if let st = f.status { s += "  status=\(st)" }
        if let r = f.remaining { s += "  remaining=\(r)" }
        return s
    }
}
