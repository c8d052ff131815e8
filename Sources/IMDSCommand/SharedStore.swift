import Foundation
import IMDSCore
import IMDSIdentity
import IMDSPostgres
import IMDSRuntime
import Logging

/// `imds serve --store postgres://…` (or `store:` in the config file): the PostgreSQL store every
/// host on that database shares (docs/postgres.md), opened through the runtime's store seam.
enum SharedStore {
    /// The runtime's store for `text`. The identity key is the config file's pair when it names
    /// one, else the pair kept in the database (the first host stores its own). The last snapshot
    /// is cached in `stateDirectory`, else in ``defaultCacheDirectory``, so that a start without the
    /// database serves the data plane.
    static func location(_ text: String, stateDirectory: String?) throws -> StoreLocation {
        let url: PostgresURL
        do { url = try PostgresURL(text) } catch { throw CLIError("\(error)") }
        let cacheFile = ((stateDirectory ?? defaultCacheDirectory) as NSString).appendingPathComponent(url.cacheName + ".cache")
        return .custom(name: url.description) { opening in
            let options = PostgresInstanceStore.Options(cacheFile: cacheFile, logger: Logger(label: "imds"))
            let candidate = opening.identity
            let identity: PostgresInstanceStore.Identity = opening.config.identityKeyFile != nil
                ? .fixed(candidate)
                : .shared(
                    create: { SharedIdentity(privateKeyPEM: candidate.privateKeyPEM, certificatePEM: candidate.certificatePEM) },
                    signer: { try IdentityKey.fromPEM(privateKey: $0.privateKeyPEM, certificate: $0.certificatePEM) })
            let store = try await PostgresInstanceStore.open(url: url, config: opening.config, options: options, identity: identity,
                                                             clock: opening.clock)
            if let reason = store.unreachableReason {
                opening.report("store \(url) is unreachable (\(reason)); serving revision \(store.snapshot.revision) from the local cache \(cacheFile); writes fail until it is back")
            } else {
                opening.report("store \(url) at revision \(store.snapshot.revision)")
            }
            return store
        }
    }

    /// Where the snapshot cache goes without `--state-dir`: `/var/cache/imds` for root, else
    /// `$XDG_CACHE_HOME/imds` or `~/.cache/imds`.
    static var defaultCacheDirectory: String {
        if getuid() == 0 { return "/var/cache/imds" }
        let env = ProcessInfo.processInfo.environment
        if let xdg = env["XDG_CACHE_HOME"], xdg.hasPrefix("/") { return (xdg as NSString).appendingPathComponent("imds") }
        return (NSHomeDirectory() as NSString).appendingPathComponent(".cache/imds")
    }
}
