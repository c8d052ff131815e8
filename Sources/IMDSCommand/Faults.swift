import ArgumentParser
import IMDSWire

/// `imds faults`: fault injection, token invalidation and credential scenarios through the admin API.
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
            let request = AdminFaultRequest(
                type: type, path: path, probability: probability, milliseconds: milliseconds, status: status, count: count,
                instanceID: options.instanceID)
            let f = try await options.call("POST", AdminPaths.faults, body: request, as: AdminFault.self)
            if !options.json { print(Render.fault(f)) }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List active faults.")
        @OptionGroup var options: AdminOptions
        func run() async throws {
            let r = try await options.call("GET", AdminPaths.faults, as: AdminFaultList.self)
            guard !options.json else { return }
            if r.faults.isEmpty { print("no faults") }
            for f in r.faults { print(Render.fault(f)) }
        }
    }

    struct Clear: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Clear one fault, or all of them.")
        @OptionGroup var options: AdminOptions
        @Argument var id: String?
        func run() async throws {
            let r = try await options.call("DELETE", id.map(AdminPaths.fault) ?? AdminPaths.faults, as: AdminRemoval.self)
            if !options.json { print("removed \(r.removed)") }
        }
    }

    struct InvalidateTokens: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "invalidate-tokens", abstract: "Invalidate every token issued so far (clients get 401 and must PUT again).")
        @OptionGroup var options: AdminOptions
        func run() async throws {
            _ = try await options.call("POST", AdminPaths.invalidateTokens, as: AdminTokensInvalidated.self)
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
            let request = AdminCredentialScenario(
                scenario: scenario, seconds: seconds, code: code, message: message, role: role, instanceID: options.instanceID)
            _ = try await options.call("PUT", AdminPaths.credentialScenario, body: request, as: AdminCredentialScenarioChanged.self)
            if !options.json { print("credential scenario: \(scenario)") }
        }
    }
}
