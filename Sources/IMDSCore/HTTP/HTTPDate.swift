import Foundation
import Synchronization

/// RFC 7231 IMF-fixdate (`Mon, 23 Nov 2026 16:29:55 GMT`) and the other time formats IMDS uses,
/// rendered without `DateFormatter` (locale-free and fast).
public enum TimeFormat {
    private static let days = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"]  // 1970-01-01 was a Thursday
    private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    /// Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    static func civil(_ daysSinceEpoch: Int) -> (year: Int, month: Int, day: Int) {
        let z = daysSinceEpoch + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let y = yoe + era * 400
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (m <= 2 ? y + 1 : y, m, d)
    }

    /// Days since 1970-01-01 for a civil date.
    static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = month > 2 ? month - 3 : month + 9
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    /// The range every rendered time is clamped to: years 0000 to 9999, the four digits the formats have.
    static let renderable: ClosedRange<Double> = -62_167_219_200...253_402_300_799

    private static func parts(_ date: Date) -> (Int, Int, Int, Int, Int, Int, Int) {
        // Never trap on a date far out of range (or NaN): clamp it to what four digits can show.
        let t = date.timeIntervalSince1970
        let secs = Int(t.isNaN ? 0 : min(max(t, renderable.lowerBound), renderable.upperBound).rounded(.down))
        let days = secs >= 0 ? secs / 86400 : (secs - 86399) / 86400
        let rem = secs - days * 86400
        let (y, m, d) = civil(days)
        let weekday = ((days % 7) + 7) % 7
        return (y, m, d, rem / 3600, (rem / 60) % 60, rem % 60, weekday)
    }

    private static func pad(_ v: Int, _ width: Int = 2) -> String {
        let s = String(v)
        return s.count >= width ? s : String(repeating: "0", count: width - s.count) + s
    }

    /// `Mon, 23 Nov 2026 16:29:55 GMT` (HTTP `Date`, `Last-Modified`).
    /// Every response carries two (`Date`, `Last-Modified`), and both change at most once a second:
    /// the last two renderings are kept, so most responses render none.
    public static func http(_ date: Date) -> String {
        let t = date.timeIntervalSince1970
        let key = t.isNaN ? 0 : Int(min(max(t, renderable.lowerBound), renderable.upperBound).rounded(.down))
        if let hit = httpCache.withLock({ $0.lookup(key) }) { return hit }
        let text = renderHTTP(date)
        httpCache.withLock { $0.insert(key, text) }
        return text
    }

    private static let httpCache = Mutex(TwoEntryCache())

    struct TwoEntryCache {
        var keys = (Int.min, Int.min)
        var values = ("", "")
        var next = 0
        func lookup(_ key: Int) -> String? {
            if keys.0 == key { return values.0 }
            if keys.1 == key { return values.1 }
            return nil
        }
        mutating func insert(_ key: Int, _ value: String) {
            if next == 0 { (keys.0, values.0) = (key, value) } else { (keys.1, values.1) = (key, value) }
            next ^= 1
        }
    }

    /// ``http(_:)`` without the cache.
    static func renderHTTP(_ date: Date) -> String {
        let (y, m, d, hh, mm, ss, wd) = parts(date)
        guard (1000...9999).contains(y) else {
            return "\(days[wd]), \(pad(d)) \(months[m - 1]) \(y) \(pad(hh)):\(pad(mm)):\(pad(ss)) GMT"
        }
        // Written byte by byte: `Mon, 23 Nov 2026 16:29:55 GMT` is always 29 bytes here.
        return String(unsafeUninitializedCapacity: 29) { out in
            var i = 0
            func put(_ b: UInt8) { out[i] = b; i += 1 }
            func two(_ v: Int) { put(UInt8(48 + v / 10)); put(UInt8(48 + v % 10)) }
            for b in days[wd].utf8 { put(b) }
            put(44); put(32); two(d); put(32)
            for b in months[m - 1].utf8 { put(b) }
            put(32); two(y / 100); two(y % 100); put(32)
            two(hh); put(58); two(mm); put(58); two(ss)
            put(32); put(71); put(77); put(84)
            return i
        }
    }

    /// `2026-11-23T16:29:55Z` (credentials, identity document, spot and rebalance notices).
    public static func iso8601(_ date: Date) -> String {
        let (y, m, d, hh, mm, ss, _) = parts(date)
        return "\(pad(y, 4))-\(pad(m))-\(pad(d))T\(pad(hh)):\(pad(mm)):\(pad(ss))Z"
    }

    /// `21 Jan 2019 09:00:43 GMT` (scheduled maintenance events; Go layout `2 Jan 2006 15:04:05 GMT`).
    public static func maintenance(_ date: Date) -> String {
        let (y, m, d, hh, mm, ss, _) = parts(date)
        return "\(d) \(months[m - 1]) \(y) \(pad(hh)):\(pad(mm)):\(pad(ss)) GMT"
    }

    /// Parses `YYYY-MM-DDTHH:MM:SSZ` (fractional seconds are not accepted).
    public static func parseISO8601(_ text: String) -> Date? {
        let u = Array(text.utf8)
        guard u.count == 20, u[4] == 45, u[7] == 45, u[10] == 84, u[13] == 58, u[16] == 58, u[19] == 90
        else { return nil }
        func num(_ r: Range<Int>) -> Int? {
            var v = 0
            for i in r {
                guard u[i] >= 48 && u[i] <= 57 else { return nil }
                v = v * 10 + Int(u[i] - 48)
            }
            return v
        }
        guard let y = num(0..<4), let mo = num(5..<7), let d = num(8..<10), let h = num(11..<13),
            let mi = num(14..<16), let s = num(17..<19), (1...12).contains(mo), (1...31).contains(d), h < 24, mi < 60,
            s < 61
        else { return nil }
        let days = daysFromCivil(year: y, month: mo, day: d)
        return Date(timeIntervalSince1970: TimeInterval(days * 86400 + h * 3600 + mi * 60 + s))
    }
}
