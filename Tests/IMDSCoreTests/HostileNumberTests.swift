import Foundation
import IMDSCore
import Testing

/// Numbers from input (config files, admin events, time offsets) never trap: each out-of-range
/// value is a clear error, and every time rendered stays in range (issue 16.2).
@Suite("Hostile numbers")
struct HostileNumberTests {
    static let limit = 100 * 366 * 86400  // ConfigMap.maxDurationSeconds

    @Test(arguments: [
        ("now", 0), ("90", 90), ("+90", 90), ("+90s", 90), ("+2m", 120), ("+1h30m", 5400), ("+2d", 172_800),
        ("+36600d", limit), ("+\(limit)", limit), ("+\(limit)s", limit), ("+878400h", limit),
    ])
    func delaysParse(text: String, seconds: Int) {
        #expect(TimeSpec.parse(text) == .relative(seconds: seconds))
    }

    @Test(arguments: [
        "+9000000000000000h", "9223372036854775807", "+9223372036854775807s", "+9223372036854775808",
        "+99999999999999999999999999999999s", "+\(limit + 1)", "+36601d", "+36600d1s", "+878401h",
        "+9223372036854775807d", "+1h9223372036854775807s", "+4611686018427387904m", "-5", "+-5s", "+5x", "+h", "+5h5",
        "+", "", "+٣s", "+½s", "1e9", "+inf", "nan",
    ])
    func delaysOutOfRangeAreRefused(text: String) {
        #expect(TimeSpec.parse(text) == nil)
    }

    /// Every number with 1…40 digits, in every unit and as a plain count, parses without trapping to
    /// nil or a delay within the limit.
    @Test func everyDigitCountAndUnit() {
        for digits in 1...40 {
            for first in ["1", "5", "9"] {
                let n = first + String(repeating: "9", count: digits - 1)
                for unit in ["", "s", "m", "h", "d"] {
                    for text in ["+" + n + unit, n + unit, "+1h" + n + unit] {
                        if case .relative(let s)? = TimeSpec.parse(text) {
                            #expect((0...Self.limit).contains(s), "\(text) → \(s)")
                        }
                    }
                }
            }
        }
    }

    @Test(arguments: [
        #"{"type": "rebalance-recommendation", "at": "+9000000000000000h"}"#,
        #"{"type": "rebalance-recommendation", "at": "9223372036854775807"}"#,
        #"{"type": "spot-interruption", "at": "now", "time": "+9223372036854775807s"}"#,
        #"{"type": "scheduled-maintenance", "not-before": "+99999999999999999999d"}"#,
        #"{"type": "scheduled-maintenance", "not-after": "+9000000000000000h"}"#,
        #"{"type": "scheduled-maintenance", "not-before-deadline": "+9000000000000000h"}"#,
    ])
    func adminEventTimesOutOfRangeAreConfigErrors(json: String) {
        #expect(throws: ConfigError.self) { try EventSpec.decode(json: Data(json.utf8)) }
    }

    /// The farthest accepted times still render: an event at the limit, or at 9999-12-31 with the
    /// defaults added on top (spot +2 minutes, maintenance +2 days +2 hours).
    @Test func farthestEventsRender() throws {
        let base = Date(timeIntervalSince1970: 1_800_000_000)
        for json in [
            #"{"type": "spot-interruption", "at": "+\#(Self.limit)"}"#,
            #"{"type": "spot-interruption", "at": "9999-12-31T23:59:59Z"}"#,
            #"{"type": "scheduled-maintenance", "at": "9999-12-31T23:59:59Z"}"#,
            #"{"type": "scheduled-maintenance", "at": "0000-01-01T00:00:00Z", "not-before": "0000-01-01T00:00:00Z"}"#,
        ] {
            let event = try EventSpec.decode(json: Data(json.utf8)).resolve(base: base)
            #expect(!TimeFormat.iso8601(event.at).isEmpty)
            switch event.kind {
            case .spotInterruption(_, let time): #expect(TimeFormat.iso8601(time).count == 20)
            case .maintenance(_, _, let nb, let na, _):
                #expect(TimeFormat.maintenance(nb).hasSuffix("GMT") && TimeFormat.maintenance(na).hasSuffix("GMT"))
            default: break
            }
        }
    }

    @Test(arguments: [
        (1e300, "9999-12-31T23:59:59Z"), (-1e300, "0000-01-01T00:00:00Z"), (Double.infinity, "9999-12-31T23:59:59Z"),
        (-Double.infinity, "0000-01-01T00:00:00Z"), (Double.nan, "1970-01-01T00:00:00Z"),
        (9_223_372_036_854_775_808, "9999-12-31T23:59:59Z"), (0, "1970-01-01T00:00:00Z"),
    ])
    func renderingClampsInsteadOfTrapping(epoch: Double, iso: String) {
        let d = Date(timeIntervalSince1970: epoch)
        #expect(TimeFormat.iso8601(d) == iso)
        #expect(TimeFormat.http(d).hasSuffix("GMT"))
        #expect(TimeFormat.maintenance(d).hasSuffix("GMT"))
    }

    /// Config-file durations and times: the out-of-range forms of the issue and their class are
    /// errors naming the key (the server keeps running on SIGHUP with them; scripts/test-hostile-input.sh).
    @Test(arguments: [
        ("instance:\n  iam:\n    role: app\n    credentials:\n      lifetime: 9000000000000000h\n", "lifetime"),
        ("instance:\n  iam:\n    role: app\n    credentials:\n      lifetime: 9223372036854775807\n", "lifetime"),
        ("instance:\n  iam:\n    role: app\n    credentials:\n      lifetime: 99999999999999999999999999s\n", "lifetime"),
        ("instance:\n  iam:\n    role: app\n    credentials:\n      rotate-before-expiry: 9223372036854775807d\n", "rotate-before-expiry"),
        ("instance:\n  events:\n    - {type: rebalance-recommendation, at: +9000000000000000h}\n", "at"),
        ("instance:\n  events:\n    - {type: rebalance-recommendation, at: 9223372036854775807}\n", "at"),
        ("instance:\n  events:\n    - {type: spot-interruption, at: now, time: +9223372036854775807s}\n", "time"),
        ("instance:\n  metadata-options:\n    http-put-response-hop-limit: 9223372036854775808\n", "hop-limit"),
        ("instance:\n  launch-time: 99999-01-01T00:00:00Z\n", "launch-time"),
    ])
    func configNumbersOutOfRange(yaml: String, key: String) {
        do {
            _ = try IMDSConfig.parse(Data(yaml.utf8), isJSON: false)
            Issue.record("accepted: \(yaml)")
        } catch {
            #expect(error.description.contains(key), "\(error.description)")
        }
    }
}
