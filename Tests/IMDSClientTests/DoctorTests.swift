import Foundation
@testable import IMDSClient
import Testing

@Suite("Doctor verdicts (stub transport)")
struct DoctorTests {
    static func diagnose(env: [String: String] = [:], _ handler: @escaping @Sendable (IMDSHTTPRequest, Int) -> Step) async -> IMDSDiagnosis {
        let doctor = IMDSDoctor(endpoint: .ipv4, environment: env, transport: StubTransport(handler),
                                timeouts: IMDSTimeouts(connect: .milliseconds(100), read: .milliseconds(100)))
        return await doctor.run()
    }

    @Test(arguments: [
        (400, "token-request-invalid", Int32(1)), (404, "no-imdsv2", 2), (405, "no-imdsv2", 2), (503, "server-error", 1),
        (429, "server-error", 1), (403, "token-forbidden", 2),
    ])
    func tokenStatuses(status: Int, id: String, exit: Int32) async {
        let d = await Self.diagnose { r, _ in r.method == "PUT" ? .respond(status) : .respond(200, body: "i-0123456789abcdef0") }
        #expect(d.findings.first?.id == id)
        #expect(d.exitCode == exit)
    }

    @Test func connectTimeoutIsUnreachable() async {
        let d = await Self.diagnose { _, _ in .fail(.connectTimeout) }
        #expect(d.findings.map(\.id) == ["unreachable"])
        #expect(d.exitCode == 1)
        #expect(d.findings[0].fix.contains { $0.contains("ip route get 169.254.169.254") })
    }

    @Test func hopLimitWithTokensRequiredSaysNothingWorks() async {
        let d = await Self.diagnose { r, _ in r.method == "PUT" ? .fail(.readTimeout) : .respond(401) }
        #expect(d.findings.first?.id == "hop-limit")
        #expect(d.findings[0].detail.contains("nothing works from here"))
        #expect(d.findings[0].fix[0].contains("--instance-id <instance-id> --http-put-response-hop-limit 2"))
    }

    @Test func staleTokenRejected() async {
        let d = await Self.diagnose { r, _ in
            r.method == "PUT" ? .token() : (r.header("x-aws-ec2-metadata-token") == nil ? .respond(200, body: "i-0123456789abcdef0") : .respond(401))
        }
        #expect(d.findings.first?.id == "token-rejected")
    }

    @Test func smallSkewIsAWarning() async {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "GMT")
        f.dateFormat = "EEE, dd MMM yyyy HH:mm:ss 'GMT'"
        let date = f.string(from: Date().addingTimeInterval(150))
        let d = await Self.diagnose { r, _ in
            r.method == "PUT" ? .respond(200, body: "T", headers: [IMDSHeaderField("X-Aws-Ec2-Metadata-Token-Ttl-Seconds", "21600"), IMDSHeaderField("Date", date)])
                : .respond(200, body: "i-0123456789abcdef0", headers: [IMDSHeaderField("Date", date)])
        }
        #expect(d.findings.first?.id == "clock-skew")
        #expect(d.findings.first?.severity == .warning)
        #expect(d.findings.first?.summary.contains("behind") == true)
        #expect(d.exitCode == 2)
    }

    @Test(arguments: [
        ("169.254.169.254", true), ("*", true), ("169.254.0.0/16", true), ("169.254.169.254:80", true),
        ("localhost, 169.254.169.254", true), ("10.0.0.0/8", false), ("169.254.169.25", false), (".amazonaws.com", false), ("", false),
    ])
    func noProxyCoverage(list: String, covered: Bool) {
        #expect(IMDSDoctor.noProxyCovers(list, host: "169.254.169.254", port: 80) == covered)
    }

    @Test func noProxyForNames() {
        #expect(IMDSDoctor.noProxyCovers(".example.com", host: "imds.example.com", port: 80))
        #expect(IMDSDoctor.noProxyCovers("example.com", host: "imds.example.com", port: 80))
        #expect(!IMDSDoctor.noProxyCovers("example.com", host: "imds.example.org", port: 80))
        #expect(IMDSDoctor.noProxyCovers("[fd00:ec2::254]", host: "fd00:ec2::254", port: 80))
    }

    @Test func proxyFindingNamesEveryVariable() async {
        let d = await Self.diagnose(env: ["http_proxy": "http://p:1", "ALL_PROXY": "socks5://p:2", "HTTPS_PROXY": "http://ignored"]) { r, _ in
            r.method == "PUT" ? .token() : .respond(200, body: "i-0123456789abcdef0")
        }
        let proxy = d.findings.first { $0.id == "proxy" }
        #expect(proxy?.summary.contains("http_proxy=http://p:1") == true)
        #expect(proxy?.summary.contains("ALL_PROXY=socks5://p:2") == true)
        #expect(proxy?.summary.contains("HTTPS_PROXY") == false, "https proxies do not apply to http://")
    }

    @Test(arguments: [
        ("Sun, 06 Nov 1994 08:49:37 GMT", 784_111_777.0), ("Mon, 23 Nov 2026 16:29:55 GMT", 1_795_451_395.0),
    ])
    func httpDates(text: String, epoch: Double) {
        #expect(HTTPDateParser.parse(text) == Date(timeIntervalSince1970: epoch))
    }

    @Test func badHTTPDates() {
        for bad in ["", "yesterday", "Sun, 06 Nov 1994 08:49:37 PST", "Sun, 32 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT",
                    // A hostile server's Date: far years and negative fields never reach date arithmetic.
                    "Sun, 06 Nov 9223372036854775807 08:49:37 GMT", "Sun, 06 Nov 10000 08:49:37 GMT",
                    "Sun, 06 Nov 1994 -1:49:37 GMT", "Sun, 06 Nov 1994 08:-9:37 GMT", "Sun, 06 Nov 1994 08:49:-37 GMT"] {
            #expect(HTTPDateParser.parse(bad) == nil, "\(bad)")
        }
    }
}
