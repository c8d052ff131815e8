import ArgumentParser
import Foundation
import IMDSClient

/// Options shared by the commands that talk to the admin API on the control plane.
struct AdminOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Control-plane URL (default: $IMDS_CONTROL_ENDPOINT or http://127.0.0.1:1339).", valueName: "url"))
    var endpoint: String?

    @Option(help: "Instance to act on (default: the server's instance).")
    var instanceID: String?

    @Flag(help: "Print the API's JSON answer.")
    var json = false


    /// Sends a request to the admin API (signed when control-plane keys are in the environment);
    /// errors go to standard error with a non-zero exit.
    func call(_ method: String, _ path: String, body: [String: Any]? = nil) async throws -> Any {
        var target = "/admin/v1" + path
        if let instanceID {
            target += (target.contains("?") ? "&" : "?") + "instance-id=" + (instanceID.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? instanceID)
        }
        let payload = try body.map { Array(try JSONSerialization.data(withJSONObject: $0)) } ?? []
        let response: IMDSHTTPResponse
        do {
            response = try await ControlPlaneClient(ControlPlaneClient.defaultURL(endpoint))
                .send(method, target, contentType: body == nil ? nil : "application/json", body: payload)
        } catch {
            throw CLIError(error.description)
        }
        let object = try? JSONSerialization.jsonObject(with: Data(response.body))
        guard (200..<300).contains(response.status) else {
            if let e = (object as? [String: Any])?["error"] as? [String: Any] {
                throw CLIError("\(e["code"] ?? response.status): \(e["message"] ?? "")")
            }
            throw CLIError("the control plane answered \(response.status): \(response.bodyText.prefix(300))")
        }
        if json { print(response.bodyText, terminator: response.bodyText.hasSuffix("\n") ? "" : "\n") }
        return object ?? [:]
    }
}

enum Render {
    static func event(_ e: [String: Any]) -> String {
        let type = e["type"] as? String ?? "?"
        var detail: [String] = []
        for key in ["action", "time", "code", "description", "not-before", "not-after", "not-before-deadline", "state"] {
            if let v = e[key] { detail.append("\(key)=\(v)") }
        }
        let when = (e["active"] as? Bool ?? false) ? "active since \(e["at"] ?? "")" : "scheduled for \(e["at"] ?? "")"
        return "\(e["id"] ?? "")  \(type)  \(when)  \(detail.joined(separator: " "))"
    }

    static func fault(_ f: [String: Any]) -> String {
        var s = "\(f["id"] ?? "")  \(f["type"] ?? "")  path=\(f["path"] ?? "*")  probability=\(f["probability"] ?? 1)"
        if let ms = f["milliseconds"] { s += "  milliseconds=\(ms)" }
        if let st = f["status"] { s += "  status=\(st)" }
        if let r = f["remaining"] { s += "  remaining=\(r)" }
        return s
    }
}

struct Events: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Trigger, list and clear instance events (spot, rebalance, maintenance, lifecycle) at runtime.",
        discussion: "Times: now, a delay (+30s, +2m, 90) or an absolute time (2026-01-02T03:04:05Z).",
        subcommands: [List.self, Spot.self, Rebalance.self, Maintenance.self, Lifecycle.self, InstanceAction.self,
                      Clear.self, Complete.self, Cancel.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List events, active faults and the credential scenario.")
        @OptionGroup var options: AdminOptions
        func run() async throws {
            let r = try await options.call("GET", "/events") as? [String: Any] ?? [:]
            guard !options.json else { return }
            let events = r["events"] as? [[String: Any]] ?? []
            let faults = r["faults"] as? [[String: Any]] ?? []
            print("instance \(r["instance-id"] ?? "")")
            print(events.isEmpty ? "events: none" : "events:")
            for e in events { print("  " + Render.event(e)) }
            print(faults.isEmpty ? "faults: none" : "faults:")
            for f in faults { print("  " + Render.fault(f)) }
            if let s = r["credential-scenario"] as? [String: Any], let name = s["scenario"] as? String, name != "normal" {
                print("credential scenario: \(name)")
            }
        }
    }

    static func add(_ options: AdminOptions, _ body: [String: Any]) async throws {
        let e = try await options.call("POST", "/events", body: body) as? [String: Any] ?? [:]
        if !options.json { print(Render.event(e)) }
    }

    struct Spot: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A spot interruption notice (spot/instance-action).")
        @OptionGroup var options: AdminOptions
        @Option(help: "terminate, stop or hibernate.") var action = "terminate"
        @Option(help: "When the notice appears.") var at = "now"
        @Option(help: "The action's time (default: two minutes after the notice).") var time: String?
        func run() async throws {
            var b: [String: Any] = ["type": "spot-interruption", "action": action, "at": at]
            if let time { b["time"] = time }
            try await Events.add(options, b)
        }
    }

    struct Rebalance: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A rebalance recommendation (events/recommendations/rebalance).")
        @OptionGroup var options: AdminOptions
        @Option(help: "When it appears.") var at = "now"
        func run() async throws { try await Events.add(options, ["type": "rebalance-recommendation", "at": at]) }
    }

    struct Maintenance: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A scheduled maintenance event (events/maintenance/scheduled).")
        @OptionGroup var options: AdminOptions
        @Option(help: "instance-reboot, system-reboot, system-maintenance, instance-retirement or instance-stop.") var code = "system-reboot"
        @Option var description = "scheduled reboot"
        @Option(help: "When it appears.") var at = "now"
        @Option var notBefore: String?
        @Option var notAfter: String?
        @Option var notBeforeDeadline: String?
        func run() async throws {
            var b: [String: Any] = ["type": "scheduled-maintenance", "code": code, "description": description, "at": at]
            if let notBefore { b["not-before"] = notBefore }
            if let notAfter { b["not-after"] = notAfter }
            if let notBeforeDeadline { b["not-before-deadline"] = notBeforeDeadline }
            try await Events.add(options, b)
        }
    }

    struct Lifecycle: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "An Auto Scaling target lifecycle state (autoscaling/target-lifecycle-state).")
        @OptionGroup var options: AdminOptions
        @Argument(help: "InService, Standby, Detached, Terminated, Warmed:Stopped, Warmed:Running, Warmed:Hibernated, Warmed:Terminated.") var state: String
        @Option(help: "When it appears.") var at = "now"
        func run() async throws { try await Events.add(options, ["type": "autoscaling-lifecycle", "state": state, "at": at]) }
    }

    struct InstanceAction: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "instance-action", abstract: "Set instance-action (none, shutdown, bundle-pending).")
        @OptionGroup var options: AdminOptions
        @Argument var action: String
        @Option(help: "When it appears.") var at = "now"
        func run() async throws { try await Events.add(options, ["type": "instance-action", "action": action, "at": at]) }
    }

    struct Clear: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Clear one event, or all of them.")
        @OptionGroup var options: AdminOptions
        @Argument(help: "The event id (all events when omitted).") var id: String?
        func run() async throws {
            let r = try await options.call("DELETE", "/events" + (id.map { "/" + $0 } ?? "")) as? [String: Any] ?? [:]
            if !options.json { print("removed \(r["removed"] ?? 0)") }
        }
    }

    struct Complete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Complete a scheduled maintenance event (it moves to history).")
        @OptionGroup var options: AdminOptions
        @Argument var id: String
        func run() async throws {
            let e = try await options.call("POST", "/events/\(id)/complete") as? [String: Any] ?? [:]
            if !options.json { print(Render.event(e)) }
        }
    }

    struct Cancel: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Cancel a scheduled maintenance event (it moves to history).")
        @OptionGroup var options: AdminOptions
        @Argument var id: String
        func run() async throws {
            let e = try await options.call("POST", "/events/\(id)/cancel") as? [String: Any] ?? [:]
            if !options.json { print(Render.event(e)) }
        }
    }
}

struct Faults: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Make the data plane misbehave on purpose: latency, throttling, errors, resets, token faults.",
        subcommands: [Add.self, List.self, Clear.self, InvalidateTokens.self, Credentials.self])

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add a fault.",
            discussion: "TYPE: latency (--milliseconds), throttle (429), error (--status 500|503), reset, hang, token-status (--status 403|404|405), token-timeout, token-ttl-header-missing.")
        @OptionGroup var options: AdminOptions
        @Argument var type: String
        @Option(help: "Path pattern; * matches anything (default: every path).") var path: String?
        @Option(help: "Fraction of matching requests affected (0 < p <= 1).") var probability: Double?
        @Option var milliseconds: Int?
        @Option var status: Int?
        @Option(help: "Affect only the next N matching requests.") var count: Int?
        func run() async throws {
            var b: [String: Any] = ["type": type]
            if let count { b["count"] = count }
            if let path { b["path"] = path }
            if let probability { b["probability"] = probability }
            if let milliseconds { b["milliseconds"] = milliseconds }
            if let status { b["status"] = status }
            if let id = options.instanceID { b["instance-id"] = id }
            var o = options
            o.instanceID = nil
            let f = try await o.call("POST", "/faults", body: b) as? [String: Any] ?? [:]
            if !options.json { print(Render.fault(f)) }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List active faults.")
        @OptionGroup var options: AdminOptions
        func run() async throws {
            let r = try await options.call("GET", "/faults") as? [String: Any] ?? [:]
            guard !options.json else { return }
            let faults = r["faults"] as? [[String: Any]] ?? []
            if faults.isEmpty { print("no faults") }
            for f in faults { print(Render.fault(f)) }
        }
    }

    struct Clear: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Clear one fault, or all of them.")
        @OptionGroup var options: AdminOptions
        @Argument var id: String?
        func run() async throws {
            let r = try await options.call("DELETE", "/faults" + (id.map { "/" + $0 } ?? "")) as? [String: Any] ?? [:]
            if !options.json { print("removed \(r["removed"] ?? 0)") }
        }
    }

    struct InvalidateTokens: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "invalidate-tokens", abstract: "Invalidate every token issued so far (clients get 401 and must PUT again).")
        @OptionGroup var options: AdminOptions
        func run() async throws {
            _ = try await options.call("POST", "/tokens/invalidate")
            if !options.json { print("tokens invalidated") }
        }
    }

    struct Credentials: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Switch the role credentials scenario: normal, near-expiry, expired, error, detached, role-changed.")
        @OptionGroup var options: AdminOptions
        @Argument var scenario: String
        @Option(help: "near-expiry: seconds left.") var seconds: Int?
        @Option(help: "error: the Code.") var code: String?
        @Option(help: "error: the Message.") var message: String?
        @Option(help: "role-changed: the new role name.") var role: String?
        func run() async throws {
            var b: [String: Any] = ["scenario": scenario]
            if let seconds { b["seconds"] = seconds }
            if let code { b["code"] = code }
            if let message { b["message"] = message }
            if let role { b["role"] = role }
            _ = try await options.call("PUT", "/credentials/scenario", body: b)
            if !options.json { print("credential scenario: \(scenario)") }
        }
    }
}
