import Foundation
import IMDSCore
import IMDSIdentity
import IMDSPostgres
import Logging

/// `imds serve --store postgres://…` (or `store:` in the config file): opens the PostgreSQL store
/// every host on that database shares (docs/postgres.md).
enum SharedStore {
    /// Opens the store at `text`. The identity key is the config file's pair when it names one,
    /// else the pair kept in the database (the first host creates it). The last snapshot is cached
    /// in `stateDirectory`, else in ``defaultCacheDirectory``, so that a start without the database
    /// serves the data plane.
    static func open(
        _ text: String, config: IMDSConfig, configuredIdentity: IdentityKey?, stateDirectory: String?, logger: Logger
    ) async throws -> (store: PostgresInstanceStore, signer: IdentityKey?) {
        let url: PostgresURL
        do { url = try PostgresURL(text) } catch { throw CLIError("\(error)") }
        let cacheDirectory = stateDirectory ?? defaultCacheDirectory
        let options = PostgresInstanceStore.Options(
            cacheFile: (cacheDirectory as NSString).appendingPathComponent(url.cacheName + ".cache"), logger: logger)
        let identity: PostgresInstanceStore.Identity = configuredIdentity.map { .fixed($0) }
            ?? .shared(
                create: {
                    let key = try IdentityKey.generate()
                    return SharedIdentity(privateKeyPEM: key.privateKeyPEM, certificatePEM: key.certificatePEM)
                },
                signer: { try IdentityKey.fromPEM(privateKey: $0.privateKeyPEM, certificate: $0.certificatePEM) })
        let store: PostgresInstanceStore
        do {
            store = try await PostgresInstanceStore.open(url: url, config: config, options: options, identity: identity)
        } catch {
            throw CLIError("--store \(url): \(error)")
        }
        let signer = try configuredIdentity ?? store.sharedIdentity.map {
            try IdentityKey.fromPEM(privateKey: $0.privateKeyPEM, certificate: $0.certificatePEM)
        }
        if let reason = store.unreachableReason {
            print("imds: store \(url) is unreachable (\(reason)); serving revision \(store.snapshot.revision) from the local cache \(options.cacheFile ?? ""), writes fail until it is back")
        } else {
            print("imds: store \(url) at revision \(store.snapshot.revision)")
        }
        return (store, signer)
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
