import AWSQuery
import Foundation
import IMDSClient

/// The CLI's one way to reach `imds serve`'s control plane (EC2 Query API and admin API): the
/// client library's transport, and an AWS Signature Version 4 (service `ec2`) on every request when
/// IMDS_CONTROL_ACCESS_KEY_ID / IMDS_CONTROL_SECRET_ACCESS_KEY (or AWS_ACCESS_KEY_ID /
/// AWS_SECRET_ACCESS_KEY) are set — the control plane then requires it on every path.
struct ControlPlaneClient {
    struct Unreachable: Error, CustomStringConvertible {
        var description: String
    }

    let url: String
    let endpoint: IMDSEndpoint

    /// `url` or `$IMDS_CONTROL_ENDPOINT` or `http://127.0.0.1:1339`.
    static func defaultURL(_ url: String?) -> String {
        url ?? ProcessInfo.processInfo.environment["IMDS_CONTROL_ENDPOINT"].flatMap { $0.isEmpty ? nil : $0 }
            ?? "http://127.0.0.1:1339"
    }

    init(_ url: String) throws(Unreachable) {
        self.url = url
        do { endpoint = try IMDSEndpoint(parsing: url, source: "--endpoint") } catch {
            throw Unreachable(description: "\(error)")
        }
    }

    /// Sends one request; throws ``Unreachable`` when no answer arrives.
    func send(_ method: String, _ path: String, contentType: String?, body: [UInt8]) async throws(Unreachable) -> IMDSHTTPResponse {
        var headers: [(name: String, value: String)] = contentType.map { [("Content-Type", $0)] } ?? []
        let env = ProcessInfo.processInfo.environment
        let key = env["IMDS_CONTROL_ACCESS_KEY_ID"].flatMap { $0.isEmpty ? nil : $0 } ?? env["AWS_ACCESS_KEY_ID"]
        let secret = env["IMDS_CONTROL_SECRET_ACCESS_KEY"].flatMap { $0.isEmpty ? nil : $0 } ?? env["AWS_SECRET_ACCESS_KEY"]
        if let key, let secret, !key.isEmpty, !secret.isEmpty {
            let region = env["AWS_REGION"] ?? env["AWS_DEFAULT_REGION"] ?? "us-east-1"
            headers = SigV4.clientHeaders(
                method: method, target: endpoint.basePath + path, host: endpoint.authority, headers: headers, body: body,
                credentials: SigV4.Credentials(accessKeyID: key, secretAccessKey: secret), region: region, date: Date())
        }
        do {
            return try await NIOIMDSTransport(userAgent: "imds-cli/0.1").send(
                IMDSHTTPRequest(method: method, path: path,
                                headers: headers.map { IMDSHeaderField($0.name, $0.value) }, body: body),
                to: endpoint, timeouts: IMDSTimeouts(connect: .seconds(2), read: .seconds(10)))
        } catch {
            throw Unreachable(description: "cannot connect to the control plane at \(url): \(error). Is `imds serve` running? Use --endpoint to point at it.")
        }
    }
}
