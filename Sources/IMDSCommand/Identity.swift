import ArgumentParser
import Foundation
import IMDSClient
import IMDSCore
import IMDSIdentity
import IMDSPostgres
import IMDSWire

struct Identity: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The key and certificate that sign instance identity documents.",
        subcommands: [Certificate.self])

    struct Certificate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the PEM certificate that verifies signature, rsa2048 and pkcs7.",
            discussion: """
                With --endpoint, asks a running `imds serve` for the certificate it signs with (its control \
                plane, GET /admin/v1/identity/certificate): this works however the server was started, \
                even without a state directory. Otherwise reads the pair named by --config \
                (identity.private-key / identity.certificate) or kept in --state-dir, creating it in the \
                state directory if it is not there yet, so that a later `imds serve --state-dir DIR` signs \
                with the same key. With --store, prints the certificate every `imds serve --store` on that \
                database signs with (kept in the database). Verify, for example:
                  openssl smime -verify -in pkcs7.pem -inform PEM -content document -certfile cert.pem -noverify

                Exit status: 0 on success, 1 when the server or the files give no certificate, 3 when the \
                control plane cannot be reached.
                """)

        @Option(help: ArgumentHelp("Control-plane URL of a running server (e.g. http://127.0.0.1:1339).", valueName: "url"))
        var endpoint: String?
        @Option(help: "Config file naming identity.private-key and identity.certificate.") var config: String?
        @Option(help: "State directory of `imds serve --state-dir`.") var stateDir: String?
        @Option(help: ArgumentHelp("The shared store of `imds serve --store`.", valueName: "postgres://user@host:port/db")) var store: String?

        func validate() throws {
            if [endpoint != nil, store != nil, config != nil || stateDir != nil].filter({ $0 }).count > 1 {
                throw ValidationError("give one of --endpoint URL (a running server), --store URL (the shared database) or --state-dir / --config (the files).")
            }
            if endpoint == nil && store == nil && config == nil && stateDir == nil {
                throw ValidationError("give --endpoint URL (a running server's control plane), --store URL (the database of `imds serve --store`), --state-dir DIR (the one `imds serve` uses) or --config FILE naming the identity files.")
            }
        }

        func run() async throws {
            if let endpoint {
                let pem = try await Self.fromServer(endpoint)
                print(pem, terminator: pem.hasSuffix("\n") ? "" : "\n")
                return
            }
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

        /// The certificate a running server's control plane serves.
        static func fromServer(_ endpoint: String) async throws -> String {
            let response: IMDSHTTPResponse
            do {
                response = try await ControlPlaneClient(endpoint).send("GET", AdminPaths.identityCertificate, contentType: nil, body: [])
            } catch {
                FileHandle.standardError.write(Data("imds: \(error.description)\n".utf8))
                throw ExitCode(3)
            }
            guard response.status == 200, let answer = try? AdminJSON.decode(AdminIdentityCertificate.self, from: response.body),
                answer.certificate.hasPrefix("-----BEGIN CERTIFICATE-----")
            else {
                let why = (try? AdminJSON.decode(AdminError.self, from: response.body)).map { "\($0.error.code): \($0.error.message)" }
                    ?? "HTTP \(response.status): \(response.bodyText.prefix(200))"
                throw CLIError("\(endpoint) serves no identity certificate (\(why))")
            }
            return answer.certificate
        }
    }
}
