import ArgumentParser
import Foundation
import IMDSClient
import IMDSObservability

/// `imds audit`: who still calls IMDSv1, and is it safe to require IMDSv2?
struct Audit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "Report which callers still use IMDSv1 and whether it is safe to require IMDSv2.",
        discussion: """
            Reads the per-caller table of a running `imds serve` (GET /admin/v1/callers on its control plane) or an access log written by `imds serve --access-log FILE`. For each caller (process, container or source address; in a fleet, per instance it was answered as, with a verdict per instance, and --instance-id to judge one): IMDSv1 and IMDSv2 call counts, paths, first and last seen, and for IMDSv1 callers how to find and fix the calls with `imds scan`.

            Exit status: 0 safe to require IMDSv2, 1 IMDSv1 callers exist, 2 error.
            """)

    @Option(name: .long, help: ArgumentHelp("Control plane of a running imds.", valueName: "url"))
    var endpoint: String?

    @Option(name: .long, help: ArgumentHelp("Read an access log instead of a running imds.", valueName: "file"))
    var accessLog: String?

    @Option(name: .long, help: ArgumentHelp("Only the callers answered as this instance (a fleet); the verdict is that instance's.", valueName: "id"))
    var instanceId: String?

    @Flag(name: .long, help: "Print the report as JSON (for CI gates).")
    var json = false

    func run() async throws {
        let report: AuditReport
        do {
            if endpoint != nil && accessLog != nil {
                throw AuditFailure("give either --endpoint or --access-log, not both")
            }
            if let accessLog {
                guard let data = FileManager.default.contents(atPath: accessLog) else {
                    throw AuditFailure("cannot read access log \(accessLog)")
                }
                report = try AuditReport.fromAccessLog(String(decoding: data, as: UTF8.self), source: accessLog, instanceID: instanceId)
            } else {
                report = try await fetch(endpoint ?? "http://127.0.0.1:1339")
            }
        } catch {
            if json {
                let obj: [String: Any] = ["error": "\(error)", "exitCode": 2]
                let data = (try? JSONSerialization.data(withJSONObject: obj, options: [.prettyPrinted, .sortedKeys])) ?? Data()
                print(String(decoding: data, as: UTF8.self))
            }
            FileHandle.standardError.write(Data("imds audit: \(error)\n".utf8))
            throw ExitCode(2)
        }
        print(json ? report.json() : report.text(), terminator: json ? "\n" : "")
        throw ExitCode(report.exitCode)
    }

    func fetch(_ url: String) async throws -> AuditReport {
        let endpoint: IMDSEndpoint
        do {
            endpoint = try IMDSEndpoint(parsing: url, source: "--endpoint")
        } catch {
            throw AuditFailure("\(error)")
        }
        let path = ObservabilityAPI.callersPath
        let response: IMDSHTTPResponse
        do {
            response = try await NIOIMDSTransport(userAgent: "imds-audit/0.1").send(
                IMDSHTTPRequest(method: "GET", path: path), to: endpoint, timeouts: IMDSTimeouts(connect: .seconds(2), read: .seconds(10)))
        } catch {
            throw AuditFailure("cannot reach the control plane at \(endpoint): \(error). Is `imds serve` running (see --control-listen)?")
        }
        guard response.status == 200 else {
            throw AuditFailure("\(endpoint.url(for: path)) answered HTTP \(response.status): \(response.bodyText.prefix(300))")
        }
        let doc: CallersDocument
        do {
            doc = try JSONDecoder().decode(CallersDocument.self, from: Data(response.body))
        } catch {
            throw AuditFailure("\(endpoint.url(for: path)) did not return a caller table: \(error)")
        }
        return AuditReport(callers: doc.callers, totals: doc.totals, source: endpoint.url(for: path), evicted: doc.evicted,
                           instanceID: instanceId)
    }
}

struct AuditFailure: Error, CustomStringConvertible {
    var description: String
    init(_ message: String) { description = message }
}
