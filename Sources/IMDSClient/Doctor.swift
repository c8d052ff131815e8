import Foundation

/// What `imds doctor` found, in plain words, with the fix.
public struct IMDSDiagnosis: Sendable, Codable, Equatable {
    /// How bad a finding is. `problem` and `warning` make the diagnosis unhealthy.
    public enum Severity: String, Sendable, Codable, Comparable {
        case ok, info, warning, problem
        var rank: Int { [.ok: 0, .info: 1, .warning: 2, .problem: 3][self]! }
        public static func < (a: Severity, b: Severity) -> Bool { a.rank < b.rank }
    }

    /// One conclusion.
    public struct Finding: Sendable, Codable, Equatable {
        /// Stable identifier: `healthy`, `v1-allowed`, `v1-rejected`, `endpoint-disabled`, `hop-limit`,
        /// `connection-refused`, `unreachable`, `not-responding`, `proxy`, `clock-skew`,
        /// `token-forbidden`, `token-request-invalid`, `no-imdsv2`, `token-rejected`, `server-error`,
        /// `imds-disabled-by-config`, `configuration`, `unexpected`.
        public var id: String
        public var severity: Severity
        /// One line.
        public var summary: String
        /// What it means, in plain words.
        public var detail: String
        /// Commands or steps that fix it (empty when nothing needs fixing).
        public var fix: [String]

        public init(id: String, severity: Severity, summary: String, detail: String, fix: [String]) {
            self.id = id
            self.severity = severity
            self.summary = summary
            self.detail = detail
            self.fix = fix
        }
    }

    /// One request the doctor made, and what came back.
    public struct Probe: Sendable, Codable, Equatable {
        /// `token`, `v1` or `v2`.
        public var name: String
        /// `PUT /latest/api/token`, `GET /latest/meta-data/instance-id` ...
        public var request: String
        /// HTTP status, when there was a response.
        public var status: Int?
        /// `timeout`, `connection refused`, ... when there was none.
        public var error: String?
        /// The server's `Date` header.
        public var date: String?

        public init(name: String, request: String, status: Int?, error: String?, date: String?) {
            self.name = name
            self.request = request
            self.status = status
            self.error = error
            self.date = date
        }
    }

    /// The endpoint probed (`http://169.254.169.254`).
    public var endpoint: String
    /// Where the endpoint came from.
    public var endpointSource: String
    public var probes: [Probe]
    public var findings: [Finding]
    /// Server time minus local time, in seconds, when a `Date` header was seen.
    public var clockSkewSeconds: Int?
    /// The instance the service answered as (its `instance-id`), when a probe could read it: in a
    /// fleet, the instance this caller's address is.
    public var instanceID: String?

    public init(endpoint: String, endpointSource: String, probes: [Probe], findings: [Finding], clockSkewSeconds: Int?,
                instanceID: String? = nil) {
        self.endpoint = endpoint
        self.endpointSource = endpointSource
        self.probes = probes
        self.findings = findings
        self.clockSkewSeconds = clockSkewSeconds
        self.instanceID = instanceID
    }

    /// The worst severity found.
    public var worst: Severity { findings.map(\.severity).max() ?? .ok }
    /// No warnings and no problems.
    public var healthy: Bool { worst <= .info }
    /// The exit status for `imds doctor`: 0 healthy, 2 warnings only, 1 problems.
    public var exitCode: Int32 { healthy ? 0 : (worst == .problem ? 1 : 2) }
}

/// Probes an IMDS endpoint the way a failing script would (token PUT, a GET without a token, a GET
/// with one), looks at the environment (proxy variables, `AWS_EC2_METADATA_DISABLED`) and the server's
/// clock, and explains what it finds.
///
/// ```swift
/// let doctor = IMDSDoctor(endpoint: .ipv4, environment: ProcessInfo.processInfo.environment)
/// let diagnosis = await doctor.run()
/// for f in diagnosis.findings { print(f.summary) }
/// ```
public struct IMDSDoctor: Sendable {
    public var endpoint: IMDSEndpoint
    public var endpointSource: String
    public var environment: [String: String]
    public var transport: any IMDSTransport
    public var timeouts: IMDSTimeouts
    public var clock: any IMDSClientClock
    /// A configuration error found while resolving the endpoint (reported as a finding).
    public var configurationError: String?
    /// Skew (seconds) at which the clock is reported: warning from 60 s, problem from 300 s
    /// (SigV4 refuses requests more than 5 minutes off).
    public static let skewWarning = 60
    public static let skewProblem = 300

    public init(endpoint: IMDSEndpoint, endpointSource: String = "default", environment: [String: String],
                transport: any IMDSTransport = NIOIMDSTransport(), timeouts: IMDSTimeouts = .sdkDefault,
                clock: any IMDSClientClock = WallClock(), configurationError: String? = nil) {
        self.endpoint = endpoint
        self.endpointSource = endpointSource
        self.environment = environment
        self.transport = transport
        self.timeouts = timeouts
        self.clock = clock
        self.configurationError = configurationError
    }

    enum Outcome: Equatable {
        case status(Int, body: String, date: String?)
        case failed(IMDSTransportError)

        var status: Int? { if case .status(let s, _, _) = self { s } else { nil } }
        var transportError: IMDSTransportError? { if case .failed(let e) = self { e } else { nil } }
    }

    private func probe(_ request: IMDSHTTPRequest) async -> Outcome {
        do {
            let r = try await transport.send(request, to: endpoint, timeouts: timeouts)
            return .status(r.status, body: r.bodyText, date: r.header("Date"))
        } catch let e as IMDSTransportError {
            return .failed(e)
        } catch {
            return .failed(.connectionFailed("\(error)"))
        }
    }

    /// Runs the probes and returns the diagnosis (never throws: every failure is a finding).
    public func run() async -> IMDSDiagnosis {
        var findings: [IMDSDiagnosis.Finding] = []
        var probes: [IMDSDiagnosis.Probe] = []
        let base = endpoint.description

        if let configurationError {
            findings.append(.init(
                id: "configuration", severity: .problem, summary: "The IMDS client configuration is invalid.",
                detail: "\(configurationError). AWS SDKs refuse to start with this setting.",
                fix: ["Correct or unset the setting named above."]))
        }
        if let v = environment["AWS_EC2_METADATA_DISABLED"], v.trimmingCharacters(in: .whitespaces).lowercased() == "true" {
            findings.append(.init(
                id: "imds-disabled-by-config", severity: .problem,
                summary: "AWS_EC2_METADATA_DISABLED=true: AWS SDKs and the AWS CLI will not call IMDS at all.",
                detail: "With this variable set, SDKs skip instance metadata, so instance-profile credentials and the region are not found, whatever the endpoint answers.",
                fix: ["unset AWS_EC2_METADATA_DISABLED"]))
        }
        findings += proxyFindings()

        let metadataPath = "/latest/meta-data/instance-id"
        let tokenRequest = IMDSHTTPRequest(method: "PUT", path: "/latest/api/token",
                                           headers: [IMDSHeaderField("X-aws-ec2-metadata-token-ttl-seconds", "21600")])
        let put = await probe(tokenRequest)
        let v1 = await probe(IMDSHTTPRequest(method: "GET", path: metadataPath))
        var v2: Outcome?
        if case .status(200, let token, _) = put, !token.isEmpty {
            v2 = await probe(IMDSHTTPRequest(method: "GET", path: metadataPath,
                                             headers: [IMDSHeaderField("X-aws-ec2-metadata-token", token)]))
        }
        let localNow = clock.now()

        func record(_ name: String, _ request: String, _ o: Outcome) {
            switch o {
            case .status(let s, _, let date): probes.append(.init(name: name, request: request, status: s, error: nil, date: date))
            case .failed(let e): probes.append(.init(name: name, request: request, status: nil, error: e.description, date: nil))
            }
        }
        record("token", "PUT /latest/api/token", put)
        record("v1", "GET \(metadataPath) (no token)", v1)
        if let v2 { record("v2", "GET \(metadataPath) (with token)", v2) }

        var answeredAs: String?
        for o in [v2, v1] {
            if case .status(200, let body, _) = o, body.hasPrefix("i-"), body.count <= 19,
                body.utf8.dropFirst(2).allSatisfy({ ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }) { answeredAs = body; break }
        }
        let modify = "aws ec2 modify-instance-metadata-options --instance-id \(answeredAs ?? "<instance-id>")"
        let curlV2 = [
            "TOKEN=$(curl -sS -X PUT \"\(base)/latest/api/token\" -H \"X-aws-ec2-metadata-token-ttl-seconds: 21600\")",
            "curl -sS -H \"X-aws-ec2-metadata-token: $TOKEN\" \"\(base)/latest/meta-data/instance-id\"",
        ]

        findings += connectivityFindings(put: put, v1: v1, v2: v2, base: base, modify: modify, curlV2: curlV2)

        // Clock skew, from the first Date header seen.
        var skew: Int?
        for case .status(_, _, let date?) in [put, v1, v2].compactMap({ $0 }) {
            if let serverTime = HTTPDateParser.parse(date) {
                skew = Int(serverTime.timeIntervalSince(localNow).rounded())
                break
            }
        }
        if let skew, abs(skew) >= Self.skewWarning {
            let direction = skew > 0 ? "behind" : "ahead of"
            findings.append(.init(
                id: "clock-skew", severity: abs(skew) >= Self.skewProblem ? .problem : .warning,
                summary: "The local clock is \(Self.humanDuration(abs(skew))) \(direction) the metadata service's clock.",
                detail: "AWS rejects signed requests whose time is more than 5 minutes off (RequestTimeTooSkewed, "
                    + "SignatureDoesNotMatch), and credentials may look expired or not yet valid.",
                fix: [
                    "Synchronise the clock, e.g. with chrony and the Amazon Time Sync Service: add `server 169.254.169.123 prefer iburst` to /etc/chrony.conf, then `sudo systemctl restart chronyd`",
                    "Check with `chronyc tracking` or `timedatectl status` (\"System clock synchronized: yes\")",
                ]))
        }

        if !findings.contains(where: { $0.severity >= .warning }) && !findings.contains(where: { $0.id == "healthy" }) {
            findings.insert(.init(id: "healthy", severity: .ok, summary: "IMDS at \(base) answers correctly.",
                                  detail: "Token requests and token-authenticated requests work.", fix: []), at: 0)
        }
        return IMDSDiagnosis(endpoint: base, endpointSource: endpointSource, probes: probes,
                             findings: findings.sorted { $0.severity > $1.severity }, clockSkewSeconds: skew,
                             instanceID: answeredAs)
    }

    // MARK: - Connectivity verdicts

    private func connectivityFindings(put: Outcome, v1: Outcome, v2: Outcome?, base: String, modify: String,
                                      curlV2: [String]) -> [IMDSDiagnosis.Finding] {
        var out: [IMDSDiagnosis.Finding] = []
        let host = endpoint.host

        // No HTTP answer at all.
        if let pe = put.transportError, let ge = v1.transportError {
            switch (pe, ge) {
            case (.connectionRefused, _), (_, .connectionRefused):
                out.append(.init(
                    id: "connection-refused", severity: .problem,
                    summary: "Nothing accepts connections at \(base): connection refused.",
                    detail: "The address answered with a TCP reset, so no metadata service listens on \(endpoint.authority), "
                        + "or a firewall rule rejects the connection. On EC2 this happens when the address is wrong (IMDS is "
                        + "http://169.254.169.254 or, on Nitro with IPv6 enabled, http://[fd00:ec2::254]) or when a local "
                        + "firewall (iptables REJECT) blocks it; outside EC2 there is no IMDS unless an emulator runs.",
                    fix: [
                        "Check the endpoint: unset AWS_EC2_METADATA_SERVICE_ENDPOINT or pass --endpoint http://169.254.169.254",
                        "Look for firewall rules on \(host): sudo iptables -S OUTPUT | grep 169.254; sudo nft list ruleset | grep 169.254",
                        "For an emulator, make sure `imds serve` is running and listening on that address",
                    ]))
            case (.readTimeout, .readTimeout):
                out.append(.init(
                    id: "not-responding", severity: .problem,
                    summary: "\(base) accepts connections but never answers.",
                    detail: "Both the token request and a plain GET timed out after the connection was made. Something is "
                        + "listening on that address that is not a working metadata service (a hung proxy or emulator), or "
                        + "the service is overloaded (IMDS throttles per instance).",
                    fix: ["Check what listens at \(endpoint.authority)", "Retry with backoff; reduce the request rate"]))
            default:
                out.append(.init(
                    id: "unreachable", severity: .problem,
                    summary: "\(base) cannot be reached: \(ge).",
                    detail: "No answer came back at all, so packets to \(host) are dropped or not routed: a firewall rule (iptables "
                        + "DROP, a security agent), a missing route to the link-local network (169.254.0.0/16) inside a "
                        + "network namespace or VPN, the wrong address, or this is not an EC2 instance.",
                    fix: [
                        "Check the route: ip route get \(host)",
                        "Check firewall rules: sudo iptables -S OUTPUT | grep 169.254; sudo nft list ruleset | grep 169.254",
                        "Check the endpoint: unset AWS_EC2_METADATA_SERVICE_ENDPOINT or pass --endpoint http://169.254.169.254",
                    ]))
            }
            return out
        }

        // Token PUT: timeout while GETs are answered → hop limit.
        if put.transportError == .readTimeout {
            let v1Status = v1.status
            out.append(.init(
                id: "hop-limit", severity: .problem,
                summary: "The token request (PUT) times out, but plain GETs are answered: the PUT response hop limit is too low for where this runs.",
                detail: "IMDS sends token responses with an IP TTL equal to HttpPutResponseHopLimit (default 1). Behind one "
                    + "more hop, such as a container's bridge network, the response is dropped, so IMDSv2 clients wait and "
                    + "time out. SDKs then fall back to IMDSv1 after a delay"
                    + (v1Status == 401 ? ", which this instance rejects (HttpTokens=required), so nothing works from here." : ", if IMDSv1 is allowed."),
                fix: [
                    "\(modify) --http-put-response-hop-limit 2 --http-endpoint enabled",
                    "Or run the container with host networking (docker run --network host)",
                ]))
            return out
        }
        if let pe = put.transportError {
            out.append(.init(
                id: "unreachable", severity: .problem, summary: "The token request to \(base) failed: \(pe).",
                detail: "The token PUT got no answer while plain GETs did; something between this host and IMDS drops PUT requests.",
                fix: ["Check proxies and firewall rules between this host and \(host)"]))
            return out
        }

        let putStatus = put.status!
        switch putStatus {
        case 200:
            break
        case 403 where v1.status == 403 || v1.transportError != nil:
            out.append(.init(
                id: "endpoint-disabled", severity: .problem,
                summary: "The instance metadata endpoint is turned off (HttpEndpoint=disabled): every request gets 403 Forbidden.",
                detail: "Neither IMDSv1 nor IMDSv2 works until the endpoint is enabled again.",
                fix: ["\(modify) --http-endpoint enabled"]))
            return out
        case 403:
            out.append(.init(
                id: "token-forbidden", severity: .warning,
                summary: "Token requests are refused (403) although plain GETs are answered.",
                detail: "IMDS refuses token PUTs that carry X-Forwarded-For, which proxies add: a proxy is probably in the way. "
                    + "SDKs fall back to IMDSv1, which stops working once HttpTokens=required.",
                fix: ["Send requests to \(host) directly, not through a proxy (set NO_PROXY=\(host))"]))
        case 400:
            out.append(.init(
                id: "token-request-invalid", severity: .problem,
                summary: "The token request was rejected as invalid (400).",
                detail: "The request carried X-aws-ec2-metadata-token-ttl-seconds: 21600, which IMDS accepts; something between "
                    + "this host and IMDS (a proxy) drops or alters headers. SDKs treat 400 as fatal and do not fall back.",
                fix: ["Send requests to \(host) directly, not through a proxy (set NO_PROXY=\(host))"]))
        case 404, 405:
            out.append(.init(
                id: "no-imdsv2", severity: .warning,
                summary: "\(base) does not support IMDSv2 tokens (PUT answered \(putStatus)).",
                detail: "This endpoint is an old emulator or not IMDS. SDKs fall back to IMDSv1.",
                fix: ["Point clients at a real IMDS or an emulator that supports IMDSv2"]))
        case 429, 500..<600:
            out.append(.init(
                id: "server-error", severity: .problem,
                summary: "IMDS answered the token request with \(putStatus).",
                detail: putStatus == 429 ? "IMDS throttles requests per instance; back off and reduce the request rate."
                    : "A transient server error; SDKs retry with backoff.",
                fix: ["Retry with exponential backoff; cache the token and the values you read"]))
        default:
            out.append(.init(
                id: "unexpected", severity: .problem, summary: "The token request was answered \(putStatus).",
                detail: "IMDS answers token requests with 200, 400, 403 or 405; \(putStatus) suggests a proxy or a different service.",
                fix: ["Check what listens at \(endpoint.authority)"]))
        }

        if let v2, putStatus == 200 {
            switch v2 {
            case .status(200, _, _): break
            case .status(401, _, _):
                out.append(.init(
                    id: "token-rejected", severity: .problem,
                    summary: "A token IMDS had just issued was refused (401).",
                    detail: "Requests reach different services, or something in between alters the token header.",
                    fix: ["Send requests to \(host) directly, not through a proxy or load balancer"]))
            case .status(let s, _, _):
                out.append(.init(id: "unexpected", severity: .problem, summary: "A GET with a valid token was answered \(s).",
                                 detail: "instance-id should always be readable.", fix: []))
            case .failed(let e):
                out.append(.init(id: "unreachable", severity: .problem, summary: "A GET with a valid token failed: \(e).",
                                 detail: "The token was issued, but the next request got no answer.", fix: []))
            }
        }

        // IMDSv1, as a script without a token sees it.
        switch v1 {
        case .status(200, _, _):
            if putStatus == 200 {
                out.append(.init(
                    id: "v1-allowed", severity: .info,
                    summary: "IMDSv1 (requests without a token) is still allowed (HttpTokens=optional).",
                    detail: "Scripts that call IMDS without a token work now, but fail with 401 once HttpTokens is set to "
                        + "required (the default for new launches of Amazon Linux 2023). Find them with `imds scan`.",
                    fix: curlV2))
            }
        case .status(401, _, _):
            out.append(.init(
                id: "v1-rejected", severity: .warning,
                summary: "Requests without a token get 401 Unauthorized: HttpTokens is required (IMDSv2 only).",
                detail: "Scripts and tools that call \(base) without a session token (plain `curl \(base)/latest/meta-data/...`, "
                    + "old SDKs) fail. Change them to fetch a token first and send it with each request; only if that is "
                    + "impossible for now, allow IMDSv1 again.",
                fix: curlV2 + ["Temporarily allow IMDSv1 again: \(modify) --http-tokens optional --http-endpoint enabled"]))
        case .status(403, _, _) where putStatus == 200:
            out.append(.init(id: "unexpected", severity: .warning, summary: "IMDSv1 requests get 403 while IMDSv2 works.",
                             detail: "Something in between refuses token-less requests.", fix: curlV2))
        case .status(429, _, _), .status(500..<600, _, _):
            out.append(.init(id: "server-error", severity: .problem, summary: "IMDS answered a GET with \(v1.status!).",
                             detail: "Throttling or a transient error; SDKs retry with backoff.",
                             fix: ["Retry with exponential backoff; cache the values you read"]))
        default:
            break
        }
        return out
    }

    // MARK: - Proxies

    /// Proxy variables that would capture a request to the endpoint (`NO_PROXY` not covering it).
    func proxyFindings() -> [IMDSDiagnosis.Finding] {
        let host = endpoint.host.lowercased()
        let noProxy = [environment["NO_PROXY"], environment["no_proxy"]].compactMap { $0 }.joined(separator: ",")
        if Self.noProxyCovers(noProxy, host: host, port: endpoint.port) { return [] }
        var captured: [String] = []
        for name in ["http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"] {
            if let v = environment[name], !v.trimmingCharacters(in: .whitespaces).isEmpty { captured.append("\(name)=\(v)") }
        }
        guard !captured.isEmpty else { return [] }
        return [.init(
            id: "proxy", severity: .problem,
            summary: "A proxy variable would send metadata requests to a proxy: \(captured.joined(separator: ", ")).",
            detail: "curl, wget, Python (requests, urllib, botocore's own fetcher is an exception) and many other tools send "
                + "http:// requests to the proxy named there unless NO_PROXY covers \(endpoint.host). The proxy then asks "
                + "its own metadata service (wrong instance, wrong credentials) or refuses; token PUTs through a proxy get 403 "
                + "because proxies add X-Forwarded-For. This tool itself never uses a proxy.",
            fix: ["export NO_PROXY=\(endpoint.host)${NO_PROXY:+,$NO_PROXY} no_proxy=\(endpoint.host)${no_proxy:+,$no_proxy}",
                  "or: curl --noproxy '*' ..."])]
    }

    /// Whether a `NO_PROXY` list covers the host: `*`, the exact host (optionally with the port),
    /// a domain suffix for names, or an IPv4 CIDR block containing it.
    static func noProxyCovers(_ list: String, host: String, port: Int) -> Bool {
        for raw in list.split(separator: ",") {
            var entry = raw.trimmingCharacters(in: .whitespaces).lowercased()
            if entry.isEmpty { continue }
            if entry == "*" { return true }
            if entry.hasPrefix("[") , let close = entry.firstIndex(of: "]") {
                entry = String(entry[entry.index(after: entry.startIndex)..<close])
            } else if entry.hasSuffix(":\(port)"), entry.filter({ $0 == ":" }).count == 1 {
                entry = String(entry.dropLast(":\(port)".count))
            }
            if entry == host { return true }
            if entry.contains("/"), let covered = ipv4CIDR(entry, contains: host), covered { return true }
            if !host.contains(":"), host.first.map({ !$0.isNumber }) ?? false {
                let suffix = entry.hasPrefix(".") ? entry : "." + entry
                if host.hasSuffix(suffix) { return true }
            }
        }
        return false
    }

    static func ipv4CIDR(_ cidr: String, contains host: String) -> Bool? {
        let parts = cidr.split(separator: "/")
        guard parts.count == 2, let bits = Int(parts[1]), (0...32).contains(bits),
            let net = ipv4(String(parts[0])), let addr = ipv4(host) else { return nil }
        let mask: UInt32 = bits == 0 ? 0 : ~UInt32(0) << (32 - bits)
        return net & mask == addr & mask
    }

    static func ipv4(_ s: String) -> UInt32? {
        let octets = s.split(separator: ".", omittingEmptySubsequences: false)
        guard octets.count == 4 else { return nil }
        var v: UInt32 = 0
        for o in octets {
            guard let n = UInt32(o), n <= 255 else { return nil }
            v = v << 8 | n
        }
        return v
    }

    static func humanDuration(_ seconds: Int) -> String {
        if seconds < 120 { return "\(seconds) s" }
        if seconds < 7200 { return "\(seconds / 60) min" }
        if seconds < 172_800 { return "\(seconds / 3600) h \(seconds % 3600 / 60) min" }
        return "\(seconds / 86400) days"
    }
}

/// Parses HTTP dates (RFC 9110 IMF-fixdate, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`).
public enum HTTPDateParser {
    private static let months = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]

    /// The date, or nil when the text is not an IMF-fixdate.
    public static func parse(_ text: String) -> Date? {
        // "Sun, 06 Nov 1994 08:49:37 GMT"
        let fields = text.split(separator: " ")
        guard fields.count == 6, fields[0].hasSuffix(","), fields[5] == "GMT",
            let day = Int(fields[1]), (1...31).contains(day),
            let monthIndex = months.firstIndex(of: fields[2].lowercased()),
            let year = Int(fields[3]), (1970...9999).contains(year)
        else { return nil }
        let hms = fields[4].split(separator: ":")
        // A server's Date header is input: a far year or a negative field must not reach date arithmetic.
        guard hms.count == 3, let h = Int(hms[0]), let m = Int(hms[1]), let s = Int(hms[2]),
            (0..<24).contains(h), (0..<60).contains(m), (0..<61).contains(s)
        else { return nil }
        var c = DateComponents()
        c.year = year
        c.month = monthIndex + 1
        c.day = day
        c.hour = h
        c.minute = m
        c.second = s
        var cal = Calendar(identifier: .gregorian)
        cal.timeZone = TimeZone(identifier: "UTC")!
        return cal.date(from: c)
    }
}
