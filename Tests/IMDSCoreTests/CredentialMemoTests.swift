import Crypto
import Foundation
import Testing

@testable import IMDSCore

/// The credential issuer keeps each period's derived values: a pure cache, so one issuer asked
/// many times must answer exactly what a fresh issuer (nothing kept) answers, across rotations,
/// deliveries, roles, sources and a clock that goes back.
@Suite("Credential issuer memo")
struct CredentialMemoTests {
    let secret = SymmetricKey(data: Array(repeating: UInt8(7), count: 32))

    @Test func aKeptIssuerAnswersWhatAFreshOneDoes() {
        let kept = CredentialIssuer(secret: secret)
        let settings = [
            CredentialSettings(),
            CredentialSettings(lifetime: 900, rotateBeforeExpiry: 300),
            CredentialSettings(distinctV1Credentials: false),
            CredentialSettings(source: .fixed(.init(accessKeyID: "AKIAFIXED", secretAccessKey: "s", token: "t"))),
        ]
        let start = 1_767_323_045.0
        // Forward through several rotations of the shortest period, then back in time.
        let times = stride(from: 0.0, through: 3 * 3600, by: 250).map { start + $0 } + [start - 86_400, start, start + 7]
        var seen = Set<String>()
        for now in times {
            for s in settings {
                for (instance, role) in [("i-0aaaaaaaaaaaaaaa1", "app"), ("i-0bbbbbbbbbbbbbbb2", "app"), ("i-0aaaaaaaaaaaaaaa1", "other")] {
                    for delivery in [CredentialIssuer.Delivery.v1, .v2, .identity] {
                        let date = Date(timeIntervalSince1970: now)
                        let a = kept.credentials(instanceID: instance, role: role, delivery: delivery, settings: s, now: date)
                        let b = CredentialIssuer(secret: secret).credentials(instanceID: instance, role: role, delivery: delivery, settings: s, now: date)
                        #expect(a == b, "\(instance) \(role) \(delivery) at \(now)")
                        seen.insert(a.accessKeyID)
                    }
                }
            }
        }
        // The values do rotate (so the comparison above covered more than one period).
        #expect(seen.count > 20)
    }

    @Test func theMemoIsBounded() {
        let kept = CredentialIssuer(secret: secret)
        let now = Date(timeIntervalSince1970: 1_767_323_045)
        for n in 0..<(CredentialIssuer.memoCapacity + 100) {
            _ = kept.credentials(instanceID: "i-\(n)", role: "r", delivery: .v2, settings: CredentialSettings(), now: now)
        }
        #expect(kept.memoCount <= CredentialIssuer.memoCapacity)
        let again = kept.credentials(instanceID: "i-1", role: "r", delivery: .v2, settings: CredentialSettings(), now: now)
        #expect(again == CredentialIssuer(secret: secret).credentials(instanceID: "i-1", role: "r", delivery: .v2, settings: CredentialSettings(), now: now))
    }

    /// A clock far outside what an Int of seconds holds (or not a number) must not trap the
    /// rotation arithmetic: the server answers instead of dying.
    @Test func anAbsurdClockDoesNotTrap() {
        let issuer = CredentialIssuer(secret: secret)
        for seconds in [1e300, -1e300, Double.infinity, Double.nan] {
            let c = issuer.credentials(instanceID: "i-1", role: "r", delivery: .v2, settings: CredentialSettings(),
                                       now: Date(timeIntervalSince1970: seconds))
            #expect(c.accessKeyID.hasPrefix("ASIA"))
        }
    }
}
