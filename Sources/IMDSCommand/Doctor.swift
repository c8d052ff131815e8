import ArgumentParser
import Foundation
import IMDSClient

struct Doctor: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor",
        abstract: "Find out why instance metadata requests fail, and how to fix it.",
        discussion: """
            Probes the endpoint as a failing script would (a token PUT, a GET without a token, a GET with \
            one), checks the environment for proxy variables and AWS_EC2_METADATA_DISABLED, and compares \
            the server's clock with the local one. Exit status: 0 healthy, 2 warnings only (for example \
            IMDSv1 rejected while IMDSv2 works), 1 problems.
            """)

    @Option(help: ArgumentHelp(
        "IMDS endpoint URI (default: AWS_EC2_METADATA_SERVICE_ENDPOINT, then the AWS config file, then http://169.254.169.254).",
        valueName: "uri"))
    var endpoint: String?

    @Flag(help: "Probe the IPv6 endpoint http://[fd00:ec2::254].")
    var ipv6 = false

    @Option(help: ArgumentHelp("Timeout in seconds for each probe (default 1).", valueName: "seconds"))
    var timeout: Double = 1

    @Flag(help: "Print the diagnosis as JSON.")
    var json = false

    func validate() throws {
        if !(timeout > 0 && timeout <= 60) { throw ValidationError("--timeout must be more than 0 and at most 60 seconds (got \(timeout)).") }
    }

    func run() async throws {
        let env = ProcessInfo.processInfo.environment
        var configError: String?
        var endpointValue = IMDSEndpoint.ipv4
        var source = "default"
        do {
            let file = try AWSConfigFile.load(environment: env)
            let c = try IMDSClientConfiguration.resolve(environment: env, configFile: file, endpoint: endpoint,
                                                        endpointMode: ipv6 ? .ipv6 : nil)
            endpointValue = c.endpoint
            source = c.endpointSource
        } catch let e as IMDSClientError {
            configError = e.description
            // Still probe something sensible: the explicit endpoint if it parses, else the mode's default.
            if let endpoint, let parsed = try? IMDSEndpoint(parsing: endpoint) {
                endpointValue = parsed
                source = "explicit"
            } else if ipv6 {
                endpointValue = .ipv6
            }
        }
        if configError != nil, let endpoint, (try? IMDSEndpoint(parsing: endpoint)) == nil {
            // The explicit endpoint itself is invalid: nothing to probe.
            report(IMDSDiagnosis(endpoint: endpoint, endpointSource: "explicit", probes: [], findings: [
                .init(id: "configuration", severity: .problem, summary: "The endpoint is not a valid URI.",
                      detail: configError!, fix: ["Pass an endpoint such as --endpoint http://169.254.169.254"]),
            ], clockSkewSeconds: nil))
        }
        let d = Duration.milliseconds(Int64((timeout * 1000).rounded()))
        let doctor = IMDSDoctor(endpoint: endpointValue, endpointSource: source, environment: env,
                                timeouts: IMDSTimeouts(connect: d, read: d), configurationError: configError)
        report(await doctor.run())
    }

    func report(_ diagnosis: IMDSDiagnosis) -> Never {
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            struct Output: Encodable {
                var diagnosis: IMDSDiagnosis
                var healthy: Bool
                var exitCode: Int32
                enum CodingKeys: String, CodingKey { case endpoint, endpointSource, instanceID = "instanceId", probes, findings, clockSkewSeconds, healthy, exitCode }
                func encode(to encoder: any Encoder) throws {
                    var c = encoder.container(keyedBy: CodingKeys.self)
                    try c.encode(diagnosis.endpoint, forKey: .endpoint)
                    try c.encode(diagnosis.endpointSource, forKey: .endpointSource)
                    try c.encodeIfPresent(diagnosis.instanceID, forKey: .instanceID)
                    try c.encode(diagnosis.probes, forKey: .probes)
                    try c.encode(diagnosis.findings, forKey: .findings)
                    try c.encodeIfPresent(diagnosis.clockSkewSeconds, forKey: .clockSkewSeconds)
                    try c.encode(healthy, forKey: .healthy)
                    try c.encode(exitCode, forKey: .exitCode)
                }
            }
            let data = (try? encoder.encode(Output(diagnosis: diagnosis, healthy: diagnosis.healthy, exitCode: diagnosis.exitCode))) ?? Data()
            writeStdout(String(decoding: data, as: UTF8.self) + "\n")
        } else {
            writeStdout(Self.render(diagnosis))
        }
        Foundation.exit(diagnosis.exitCode)
    }

    static func render(_ d: IMDSDiagnosis) -> String {
        var out = "imds doctor: \(d.endpoint) (endpoint from: \(d.endpointSource))\n"
        if let id = d.instanceID { out += "answered as instance \(id)\n" }
        out += "\n"
        if !d.probes.isEmpty {
            let width = d.probes.map(\.request.count).max() ?? 0
            for p in d.probes {
                let result = p.status.map { "HTTP \($0)" } ?? (p.error ?? "no answer")
                out += "  \(p.request.padding(toLength: width, withPad: " ", startingAt: 0))  ->  \(result)\n"
            }
            out += "\n"
        }
        for f in d.findings {
            let label: String
            switch f.severity {
            case .ok: label = "OK"
            case .info: label = "NOTE"
            case .warning: label = "WARNING"
            case .problem: label = "PROBLEM"
            }
            out += "\(label): \(f.summary)\n"
            out += wrap(f.detail, indent: "    ") + "\n"
            if !f.fix.isEmpty {
                out += "  Fix:\n"
                for line in f.fix { out += "    \(line)\n" }
            }
            out += "\n"
        }
        let problems = d.findings.filter { $0.severity == .problem }.count
        let warnings = d.findings.filter { $0.severity == .warning }.count
        if d.healthy {
            out += "Verdict: healthy.\n"
        } else {
            out += "Verdict: \(problems) problem(s), \(warnings) warning(s).\n"
        }
        return out
    }

    static func wrap(_ text: String, indent: String, width: Int = 100) -> String {
        var lines: [String] = []
        var line = indent
        for word in text.split(separator: " ") {
            if line.count + word.count + 1 > width && line != indent {
                lines.append(line)
                line = indent
            }
            line += (line == indent ? "" : " ") + word
        }
        if line != indent { lines.append(line) }
        return lines.joined(separator: "\n")
    }
}
