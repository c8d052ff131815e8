import Foundation
import IMDSControlPlane
import IMDSCore
import IMDSObservability
import Logging
import ServiceLifecycle
import UnixSignals

/// SIGHUP: reloads the config file through the control plane (which refuses a launch the account
/// defaults forbid), keeping the running configuration on any error.
struct ReloadOnHangup: Service {
    let path: String?
    let controlPlane: EC2ControlPlane
    let secrets: [String]
    let logger: Logger

    func run() async throws {
        for await _ in await UnixSignalsSequence(trapping: .sighup).cancelOnGracefulShutdown() {
            await reload()
        }
    }

    func reload() async {
        guard let path else {
            logger.notice("SIGHUP: no --config file to reload; nothing changed")
            return
        }
        do {
            let fresh = try IMDSConfig.load(path: path)
            try await controlPlane.reload(fresh)
            Redaction.setConfiguredSecrets(secrets + fresh.secrets)
            logger.notice("SIGHUP: reloaded \(path)")
            print("imds: reloaded \(path)")
        } catch let error as EC2Error {
            logger.error("SIGHUP: launch refused, keeping the running configuration: \(error.message)")
            FileHandle.standardError.write(Data("imds: reload failed, keeping the running configuration: launch refused: \(error.message)\n".utf8))
        } catch {
            logger.error("SIGHUP: config error, keeping the running configuration: \(error)")
            FileHandle.standardError.write(Data("imds: reload failed, keeping the running configuration: config error: \(error)\n".utf8))
        }
    }
}

/// Runs `body` once the service group (and its signal handling) is running, then waits for the
/// graceful shutdown: the "listening" lines appear only when SIGTERM is already handled.
struct Announce: Service {
    let body: @Sendable () -> Void

    func run() async throws {
        body()
        try? await gracefulShutdown()
    }
}
