import Crypto
import Foundation
import IMDSCore
import Synchronization
import SwiftASN1
@_spi(CMS) import X509
import _CryptoExtras

/// The key and certificate that sign instance identity documents.
///
/// imds generates an RSA-2048 key and a self-signed certificate on first start and keeps them in the
/// state directory (`identity-key.pem`, `identity-certificate.pem`), or uses the PEM files the
/// config names. Verifiers are configured with the certificate (`imds identity certificate`).
public final class IdentityKey: IdentityDocumentSigner {
    public static let keyFileName = "identity-key.pem"
    public static let certificateFileName = "identity-certificate.pem"

    let privateKey: _RSA.Signing.PrivateKey
    public let certificate: Certificate
    private let cache = Mutex<(document: [UInt8], signatures: IdentitySignatures)?>(nil)

    public init(privateKey: _RSA.Signing.PrivateKey, certificate: Certificate) throws {
        guard certificate.publicKey == Certificate.PublicKey(privateKey.publicKey) else {
            throw IdentityKeyError("the certificate does not match the private key")
        }
        self.privateKey = privateKey
        self.certificate = certificate
    }

    /// A new RSA-2048 key and a self-signed certificate valid for ten years.
    public static func generate(now: Date = Date()) throws -> IdentityKey {
        let key = try _RSA.Signing.PrivateKey(keySize: .bits2048)
        let name = try DistinguishedName {
            CountryName("US")
            OrganizationName("imds")
            OrganizationalUnitName("EC2 instance identity (emulated, not Amazon)")
            CommonName("imds instance identity")
        }
        var serial = [UInt8](repeating: 0, count: 16)
        for i in serial.indices { serial[i] = UInt8.random(in: 0...255) }
        serial[0] &= 0x7F
        let certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(bytes: serial),
            publicKey: Certificate.PublicKey(key.publicKey),
            notValidBefore: now.addingTimeInterval(-3600), notValidAfter: now.addingTimeInterval(10 * 365 * 86400),
            issuer: name, subject: name, signatureAlgorithm: .sha256WithRSAEncryption,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
            },
            issuerPrivateKey: Certificate.PrivateKey(key))
        return try IdentityKey(privateKey: key, certificate: certificate)
    }

    /// Reads a PEM private key (PKCS#1 or PKCS#8 RSA) and certificate.
    public static func load(keyPath: String, certificatePath: String) throws -> IdentityKey {
        func read(_ path: String) throws -> String {
            guard let data = FileManager.default.contents(atPath: path), let s = String(data: data, encoding: .utf8) else {
                throw IdentityKeyError("\(path): cannot be read")
            }
            return s
        }
        let key: _RSA.Signing.PrivateKey
        do { key = try _RSA.Signing.PrivateKey(pemRepresentation: read(keyPath)) } catch let e as IdentityKeyError { throw e } catch {
            throw IdentityKeyError("\(keyPath): not a PEM RSA private key (\(error))")
        }
        let cert: Certificate
        do { cert = try Certificate(pemEncoded: read(certificatePath)) } catch let e as IdentityKeyError { throw e } catch {
            throw IdentityKeyError("\(certificatePath): not a PEM certificate (\(error))")
        }
        do { return try IdentityKey(privateKey: key, certificate: cert) } catch {
            throw IdentityKeyError("\(certificatePath) does not match \(keyPath)")
        }
    }

    /// The pair `imds serve` signs with, chosen in one place for the server and the CLI: the files
    /// the config names (`identity.private-key` / `identity.certificate`), else the pair kept in the
    /// state directory (created there on first use); nil when there is neither.
    public static func configured(keyFile: String?, certificateFile: String?, stateDirectory: String?) throws -> IdentityKey? {
        if let keyFile, let certificateFile { return try load(keyPath: keyFile, certificatePath: certificateFile) }
        if let stateDirectory { return try loadOrCreate(directory: stateDirectory) }
        return nil
    }

    /// Loads the pair from `directory`, creating it there (atomically, key mode 0600) when absent.
    public static func loadOrCreate(directory: String) throws -> IdentityKey {
        let keyPath = (directory as NSString).appendingPathComponent(keyFileName)
        let certPath = (directory as NSString).appendingPathComponent(certificateFileName)
        if FileManager.default.fileExists(atPath: keyPath) || FileManager.default.fileExists(atPath: certPath) {
            return try load(keyPath: keyPath, certificatePath: certPath)
        }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let generated = try generate()
        try AtomicFile.write(Array(generated.privateKey.pemRepresentation.utf8), to: keyPath, mode: 0o600)
        try AtomicFile.write(Array(generated.certificatePEM.utf8), to: certPath, mode: 0o644)
        return generated
    }

    /// Reads a pair from PEM text (a PKCS#1 or PKCS#8 RSA key, a certificate): the pair a shared
    /// store keeps.
    public static func fromPEM(privateKey keyPEM: String, certificate certificatePEM: String) throws -> IdentityKey {
        let key: _RSA.Signing.PrivateKey
        do { key = try _RSA.Signing.PrivateKey(pemRepresentation: keyPEM) } catch {
            throw IdentityKeyError("the stored identity key is not a PEM RSA private key (\(error))")
        }
        let cert: Certificate
        do { cert = try Certificate(pemEncoded: certificatePEM) } catch {
            throw IdentityKeyError("the stored identity certificate is not a PEM certificate (\(error))")
        }
        return try IdentityKey(privateKey: key, certificate: cert)
    }

    /// The private key in PEM form (PKCS#8), for a shared store; never printed.
    public var privateKeyPEM: String { privateKey.pemRepresentation }

    /// The certificate in PEM form (what `imds identity certificate` prints).
    public var certificatePEM: String {
        (try? certificate.serializeAsPEM().pemString) ?? ""
    }

    public func sign(document: [UInt8]) -> IdentitySignatures? {
        if let cached = cache.withLock({ $0 }), cached.document == document { return cached.signatures }
        do {
            let raw = try privateKey.signature(for: SHA256.hash(data: document), padding: .insecurePKCS1v1_5)
            let cms = try CMS.sign(
                document, signatureAlgorithm: .sha256WithRSAEncryption, certificate: certificate,
                privateKey: Certificate.PrivateKey(privateKey), detached: true)
            let cmsText = IdentitySignatures.wrap(Data(cms).base64EncodedString())
            let sigs = IdentitySignatures(
                signature: IdentitySignatures.wrap(raw.rawRepresentation.base64EncodedString()),
                rsa2048: cmsText, pkcs7: cmsText)
            cache.withLock { $0 = (document, sigs) }
            return sigs
        } catch {
            return nil
        }
    }
}

public struct IdentityKeyError: Error, CustomStringConvertible {
    public var description: String
    init(_ d: String) { description = d }
}
