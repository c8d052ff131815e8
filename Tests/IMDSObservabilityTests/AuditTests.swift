import Foundation
import Testing

@testable import IMDSObservability

@Suite("Audit verdicts")
struct AuditTests {
    static func entry(_ version: String?, status: Int = 200, path: String = "/latest/meta-data/instance-id", method: String = "GET",
                      category: String = "meta-data", rejection: String? = nil, caller: CallerProcess?, client: String = "127.0.0.1:40000",
                      time: String = "2024-05-01T00:00:00.000Z") -> AccessLogEntry {
        AccessLogEntry(time: time, instanceID: "i-1", client: client, method: method, path: path, version: version, status: status,
                       latencyMilliseconds: 0.2, category: category, tokenRejection: rejection,
                       attribution: caller == nil ? "unattributed" : "process", caller: caller)
    }

    static let script = CallerProcess(pid: 100, executable: "/usr/bin/bash", commandLine: ["bash", "deploy/get-id.sh"], user: "app", uid: 1000,
                                      workingDirectory: "/srv/app")
    static let sdk = CallerProcess(pid: 200, executable: "/usr/bin/python3.12", commandLine: ["python3", "-m", "app"], user: "app", uid: 1000,
                                   workingDirectory: "/srv/py")

    @Test("only IMDSv2 callers: safe, exit 0")
    func clean() {
        let table = CallerTable()
        table.record(Self.entry(nil, path: "/latest/api/token", method: "PUT", category: "token", caller: Self.sdk))
        table.record(Self.entry("v2", caller: Self.sdk))
        let report = AuditReport(callers: table.snapshot(), totals: table.totals, source: "test")
        #expect(report.safe)
        #expect(report.exitCode == 0)
        #expect(report.verdict == "safe to require IMDSv2")
        #expect(report.callers.count == 1)
        #expect(report.callers[0].summary.v2 == 2)
        #expect(report.callers[0].hint == nil)
    }

    @Test("a v1 caller makes it unsafe (exit 1) and gets a scan hint naming its script")
    func v1Caller() {
        let table = CallerTable()
        table.record(Self.entry("v1", caller: Self.script, time: "2024-05-01T00:00:01.000Z"))
        table.record(Self.entry("v1", path: "/latest/meta-data/ami-id", caller: Self.script, time: "2024-05-01T00:00:02.000Z"))
        table.record(Self.entry("v2", caller: Self.sdk))
        let report = AuditReport(callers: table.snapshot(), totals: table.totals, source: "test")
        #expect(!report.safe)
        #expect(report.exitCode == 1)
        #expect(report.verdict == "not safe to require IMDSv2: 1 caller still uses IMDSv1")
        let bad = report.callers.filter(\.breaks)
        #expect(bad.count == 1)
        #expect(bad[0].summary.v1 == 2)
        #expect(bad[0].summary.firstSeen == "2024-05-01T00:00:01.000Z")
        #expect(bad[0].summary.lastSeen == "2024-05-01T00:00:02.000Z")
        #expect(Set(bad[0].summary.paths.map(\.path)) == ["/latest/meta-data/instance-id", "/latest/meta-data/ami-id"])
        #expect(bad[0].scanTarget == "/srv/app/deploy/get-id.sh")
        #expect(bad[0].hint?.contains("imds scan /srv/app/deploy/get-id.sh") == true)
        #expect(bad[0].hint?.contains("imds scan --fix /srv/app/deploy/get-id.sh") == true)
        #expect(report.text().contains("verdict: not safe to require IMDSv2"))
    }

    @Test("v1 calls already refused under required still count as breaking")
    func refused() {
        let table = CallerTable()
        table.record(Self.entry("v1", status: 401, rejection: "missing", caller: nil, client: "10.0.0.9:5555"))
        let report = AuditReport(callers: table.snapshot(), totals: table.totals, source: "test")
        #expect(!report.safe)
        #expect(report.callers[0].summary.v1Rejected == 1)
        #expect(report.callers[0].summary.addresses == ["10.0.0.9"])
        #expect(report.totals.v1Rejected == 1)
    }

    @Test("no traffic: safe, with a note that the verdict needs a workload")
    func empty() {
        let report = AuditReport(callers: [], totals: .init(), source: "test")
        #expect(report.safe)
        #expect(report.notes.contains { $0.contains("no data-plane requests") })
    }

    @Test("scan targets: the script an interpreter runs, a custom binary, else the working directory", arguments: [
        (CallerProcess(pid: 1, executable: "/usr/bin/bash", commandLine: ["/bin/bash", "-e", "/opt/x/run.sh"], workingDirectory: "/"), "/opt/x/run.sh"),
        (CallerProcess(pid: 1, executable: "/usr/bin/python3.11", commandLine: ["python3", "tool.py", "--x"], workingDirectory: "/w"), "/w/tool.py"),
        (CallerProcess(pid: 1, executable: "/usr/bin/python3.11", commandLine: ["python3", "-c", "print(1)"], workingDirectory: "/w"), "/w"),
        (CallerProcess(pid: 1, executable: "/opt/agent/bin/agent", commandLine: ["agent"], workingDirectory: "/"), "/opt/agent/bin/agent"),
        (CallerProcess(pid: 1, executable: "/usr/bin/curl", commandLine: ["curl", "-s", "http://x/"], workingDirectory: "/home/u"), "/home/u"),
    ])
    func scanTargets(_ p: CallerProcess, _ expected: String) {
        #expect(AuditReport.scanTarget(p) == expected)
    }

    @Test("in a fleet a caller is judged per instance: one entry and one verdict per instance it was answered as")
    func perInstance() throws {
        func e(_ version: String, _ instance: String, _ caller: CallerProcess?, client: String) -> AccessLogEntry {
            var x = Self.entry(version, caller: caller, client: client)
            x.instanceID = instance
            return x
        }
        let table = CallerTable()
        // The script uses v1 as instance A only; the SDK uses v2 as A and B; a remote VM is C.
        table.record(e("v1", "i-0aaaaaaaaaaaaaaa1", Self.script, client: "127.0.0.2:40000"))
        table.record(e("v2", "i-0bbbbbbbbbbbbbbb2", Self.script, client: "127.0.0.3:40000"))
        table.record(e("v2", "i-0aaaaaaaaaaaaaaa1", Self.sdk, client: "127.0.0.2:40001"))
        table.record(e("v2", "i-0bbbbbbbbbbbbbbb2", Self.sdk, client: "127.0.0.3:40001"))
        table.record(e("v1", "i-0ccccccccccccccc3", nil, client: "10.0.1.33:40002"))
        let all = AuditReport(callers: table.snapshot(), totals: table.totals, source: "test")
        #expect(all.callers.count == 5, "each (caller, instance) is its own entry")
        #expect(all.instances.map(\.instanceID) == ["i-0aaaaaaaaaaaaaaa1", "i-0bbbbbbbbbbbbbbb2", "i-0ccccccccccccccc3"])
        #expect(all.instances.map(\.safe) == [false, true, false])
        #expect(all.instances.map(\.breakingCallers) == [1, 0, 1])
        #expect(all.text().contains("i-0bbbbbbbbbbbbbbb2: safe to require IMDSv2"))
        #expect(all.text().contains("i-0aaaaaaaaaaaaaaa1: not safe (1 of 2 callers use IMDSv1)"))
        let b = AuditReport(callers: table.snapshot(), totals: table.totals, source: "test", instanceID: "i-0bbbbbbbbbbbbbbb2")
        #expect(b.safe && b.exitCode == 0)
        #expect(b.verdict == "safe to require IMDSv2 on i-0bbbbbbbbbbbbbbb2")
        #expect(b.callers.count == 2 && b.callers.allSatisfy { $0.summary.instanceIDs == ["i-0bbbbbbbbbbbbbbb2"] })
        let a = AuditReport(callers: table.snapshot(), totals: table.totals, source: "test", instanceID: "i-0aaaaaaaaaaaaaaa1")
        #expect(!a.safe && a.exitCode == 1)
        #expect(a.verdict == "not safe to require IMDSv2 on i-0aaaaaaaaaaaaaaa1: 1 caller still uses IMDSv1")
        #expect(a.callers.filter(\.breaks).map(\.summary.process?.pid) == [100])
        #expect(a.json().contains("\"instance-id\" : \"i-0aaaaaaaaaaaaaaa1\""))
    }

    @Test("the report is built the same from an access log, skipping non-JSON lines")
    func fromLog() throws {
        let lines = [
            "imds: data plane listening on http://127.0.0.1:1338",
            Self.entry("v1", caller: Self.script).jsonLine(),
            Self.entry("v2", caller: Self.sdk).jsonLine(),
            "",
        ].joined(separator: "\n")
        let report = try AuditReport.fromAccessLog(lines, source: "log")
        #expect(!report.safe)
        #expect(report.callers.count == 2)
        #expect(report.callers[0].breaks)
        #expect(report.notes.isEmpty)
        #expect(throws: AuditReport.LogError.self) { try AuditReport.fromAccessLog("{\"a\":1}\n", source: "x") }
        let json = try JSONSerialization.jsonObject(with: Data(report.json().utf8)) as? [String: Any]
        #expect(json?["safe"] as? Bool == false)
    }

    @Test("the caller table is bounded: oldest callers are evicted, paths capped")
    func bounded() {
        let table = CallerTable(capacity: 3)
        for i in 0..<5 {
            table.record(Self.entry("v2", caller: nil, client: "10.0.0.\(i):1", time: "2024-05-01T00:00:0\(i).000Z"))
        }
        #expect(table.snapshot().count == 3)
        #expect(table.evicted == 2)
        #expect(Set(table.snapshot().flatMap(\.addresses)) == ["10.0.0.2", "10.0.0.3", "10.0.0.4"])
        let one = CallerTable()
        for i in 0..<(CallerTable.maxPaths + 5) { one.record(Self.entry("v1", path: "/p/\(i)", caller: nil)) }
        #expect(one.snapshot()[0].paths.count == CallerTable.maxPaths)
        #expect(one.snapshot()[0].pathsTruncated)
        #expect(one.snapshot()[0].v1 == CallerTable.maxPaths + 5)
    }
}
