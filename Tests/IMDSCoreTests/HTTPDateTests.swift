import Foundation
@testable import IMDSCore
import Testing

/// `TimeFormat.http` renders byte by byte and keeps its last two results; both must give exactly
/// what a POSIX-locale `DateFormatter` gives for IMF-fixdate.
@Suite("HTTP date")
struct HTTPDateTests {
    static let formatter: DateFormatter = {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "GMT")
        f.dateFormat = "EEE, dd MMM yyyy HH:mm:ss 'GMT'"
        return f
    }()

    @Test func matchesDateFormatterAcrossCenturies() {
        // Every weekday, month and both digits of every field: a step of 7 days plus 3 h 7 min 11 s.
        // From 1602: Foundation's calendar is Julian before 1582, HTTP dates are proleptic Gregorian.
        var t: TimeInterval = -11_600_000_000
        var checked = 0
        while t < 250_000_000_000 {  // 9892
            let d = Date(timeIntervalSince1970: t)
            let expected = Self.formatter.string(from: d)
            #expect(TimeFormat.renderHTTP(d) == expected, "at \(t)")
            #expect(TimeFormat.http(d) == expected, "at \(t) (cached)")
            checked += 1
            t += 7 * 86400 * 151 + 3 * 3600 + 7 * 60 + 11
        }
        #expect(checked > 1000)
    }

    @Test func theCacheNeverAnswersForAnotherSecond() {
        let base = Date(timeIntervalSince1970: 1_800_000_000)
        // Alternate between three seconds (more than the two kept) and fractions within them.
        for i in 0..<300 {
            let d = base.addingTimeInterval(Double(i % 3) + Double(i % 7) / 10)
            #expect(TimeFormat.http(d) == Self.formatter.string(from: d))
        }
    }

    @Test func yearsBeforeOneThousandKeepTheirFormat() {
        let d = Date(timeIntervalSince1970: -50_000_000_000)  // year 385
        #expect(TimeFormat.http(d).hasSuffix("GMT"))
        #expect(TimeFormat.http(d) == TimeFormat.renderHTTP(d))
    }
}
