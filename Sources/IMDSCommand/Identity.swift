import ArgumentParser
import IMDSCore
import IMDSIdentity
import IMDSPostgres

struct Identity: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The key and certificate that sign instance identity documents.",
        subcommands: [Certificate.self])

    struct Certificate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the PEM certificate that verifies signature, rsa2048 and pkcs7.",
            discussion: """
                Reads the pair named by --config (identity.private-key / identity.certificate) or kept in \
                --state-dir, creating it in the state directory if it is not there yet, so that a later \
                `imds serve --state-dir DIR` signs with the same key. With --store, prints the certificate \
                every `imds serve --store` on that database signs with (kept in the database). Verify, for example:
                  openssl smime -verify -in pkcs7.pem -inform PEM -content document -certfile cert.pem -noverify
                """)

        @Option(help: "Config file naming identity.private-key and identity.certificate.") var config: String?
        @Option(help: "State directory of `imds serve --state-dir`.") var stateDir: String?
        @Option(help: ArgumentHelp("The shared store of `imds serve --store`.", valueName: "postgres://user@host:port/db")) var store: String?

        func validate() throws {
            if config == nil && stateDir == nil && store == nil {
                throw ValidationError("give --state-dir DIR (the one `imds serve` uses), --store URL, or --config FILE naming the identity files; without either, `imds serve` signs with a key that lives only in memory.")
            }
        }

        func run() async throws {
            if let store {
                let pem: String?
                do { pem = try await PostgresInstanceStore.sharedCertificate(at: try PostgresURL(store)) } catch {
                    throw CLIError("--store: \(error)")
                }
                guard let pem else {
                    throw CLIError("the database holds no shared identity key yet: start `imds serve --store` on it first")
                }
                print(pem, terminator: pem.hasSuffix("\n") ? "" : "\n")
                return
            }
            let key: IdentityKey
            do {
                let named = config.flatMap { try? IMDSConfig.load(path: $0) }
                guard let found = try IdentityKey.configured(
                    keyFile: named?.identityKeyFile, certificateFile: named?.identityCertificateFile, stateDirectory: stateDir)
                else {
                    throw CLIError("\(config ?? "the config") names no identity.private-key / identity.certificate; use --state-dir")
                }
                key = found
            } catch let e as CLIError {
                throw e
            } catch {
                throw CLIError("identity key: \(error)")
            }
            print(key.certificatePEM, terminator: key.certificatePEM.hasSuffix("\n") ? "" : "\n")
        }
    }
}
