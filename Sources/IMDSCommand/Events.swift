import ArgumentParser
import IMDSWire

/// `imds events`: instance events through the admin API.
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
            let r = try await options.call("GET", AdminPaths.events, as: AdminEventList.self)
            guard !options.json else { return }
            print("instance \(r.instanceID)")
            print(r.events.isEmpty ? "events: none" : "events:")
            for e in r.events { print("  " + Render.event(e)) }
            print(r.faults.isEmpty ? "faults: none" : "faults:")
            for f in r.faults { print("  " + Render.fault(f)) }
            if r.credentialScenario.scenario != "normal" {
                print("credential scenario: \(r.credentialScenario.scenario)")
            }
        }
    }

    static func add(_ options: AdminOptions, _ request: AdminEventRequest) async throws {
        var request = request
        request.instanceID = options.instanceID
        let e = try await options.call("POST", AdminPaths.events, body: request, as: AdminEvent.self)
        if !options.json { print(Render.event(e)) }
    }

    struct Spot: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A spot interruption notice (spot/instance-action).")
        @OptionGroup var options: AdminOptions
        @Option(help: "terminate, stop or hibernate.") var action = "terminate"
        @Option(help: "When the notice appears.") var at = "now"
        @Option(help: "The action's time (default: two minutes after the notice).") var time: String?
        func run() async throws {
            try await Events.add(options, AdminEventRequest(type: "spot-interruption", at: at, action: action, time: time))
        }
    }

    struct Rebalance: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A rebalance recommendation (events/recommendations/rebalance).")
        @OptionGroup var options: AdminOptions
        @Option(help: "When it appears.") var at = "now"
        func run() async throws { try await Events.add(options, AdminEventRequest(type: "rebalance-recommendation", at: at)) }
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
            try await Events.add(options, AdminEventRequest(
                type: "scheduled-maintenance", at: at, code: code, description: description, notBefore: notBefore,
                notAfter: notAfter, notBeforeDeadline: notBeforeDeadline))
        }
    }

    struct Lifecycle: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "An Auto Scaling target lifecycle state (autoscaling/target-lifecycle-state).")
        @OptionGroup var options: AdminOptions
        @Argument(help: "InService, Standby, Detached, Terminated, Warmed:Stopped, Warmed:Running, Warmed:Hibernated, Warmed:Terminated.") var state: String
        @Option(help: "When it appears.") var at = "now"
        func run() async throws { try await Events.add(options, AdminEventRequest(type: "autoscaling-lifecycle", at: at, state: state)) }
    }

    struct InstanceAction: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "instance-action", abstract: "Set instance-action (none, shutdown, bundle-pending).")
        @OptionGroup var options: AdminOptions
        @Argument var action: String
        @Option(help: "When it appears.") var at = "now"
        func run() async throws { try await Events.add(options, AdminEventRequest(type: "instance-action", at: at, action: action)) }
    }

    struct Clear: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Clear one event, or all of them.")
        @OptionGroup var options: AdminOptions
        @Argument(help: "The event id (all events when omitted).") var id: String?
        func run() async throws {
            let r = try await options.call("DELETE", id.map(AdminPaths.event) ?? AdminPaths.events, as: AdminRemoval.self)
            if !options.json { print("removed \(r.removed)") }
        }
    }

    /// Completes or cancels a scheduled maintenance event.
    static func finish(_ options: AdminOptions, _ id: String, _ verb: AdminEventVerb) async throws {
        let e = try await options.call("POST", AdminPaths.event(id, verb), as: AdminEvent.self)
        if !options.json { print(Render.event(e)) }
    }

    struct Complete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Complete a scheduled maintenance event (it moves to history).")
        @OptionGroup var options: AdminOptions
        @Argument var id: String
        func run() async throws { try await Events.finish(options, id, .complete) }
    }

    struct Cancel: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Cancel a scheduled maintenance event (it moves to history).")
        @OptionGroup var options: AdminOptions
        @Argument var id: String
        func run() async throws { try await Events.finish(options, id, .cancel) }
    }
}
