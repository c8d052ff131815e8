import ArgumentParser
import Foundation
import IMDSClient
import IMDSWire

/// Options shared by the commands that talk to the admin API on the control plane, and the one
/// call they make: a request with an admin body, an answer decoded as an admin type (`IMDSWire`).
struct AdminOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Control-plane URL (default: $IMDS_CONTROL_ENDPOINT or http://127.0.0.1:1339).", valueName: "url"))
    var endpoint: String?

    @Option(help: "Instance to act on (default: the server's instance).")
    var instanceID: String?

    @Flag(help: "Print the API's JSON answer.")
    var json = false

    /// Sends a request without a body to the admin API (signed when control-plane keys are in the
    /// environment) and decodes the answer; errors go to standard error with a non-zero exit. With
    /// `--json`, the answer is printed as it came.
    func call<Answer: Decodable>(_ method: String, _ path: String, as: Answer.Type) async throws -> Answer {
        var target = path
        if let instanceID {
            target += "?instance-id=" + (instanceID.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? instanceID)
        }
        return try await exchange(method, target, body: nil, as: Answer.self)
    }

    /// Sends `body` (which names the instance itself) and decodes the answer, as ``call(_:_:as:)``.
    func call<Answer: Decodable>(_ method: String, _ path: String, body: some Encodable, as: Answer.Type) async throws -> Answer {
        try await exchange(method, path, body: AdminJSON.encode(body), as: Answer.self)
    }

    private func exchange<Answer: Decodable>(_ method: String, _ target: String, body: [UInt8]?, as: Answer.Type) async throws -> Answer {
        let response: IMDSHTTPResponse
        do {
            response = try await ControlPlaneClient(ControlPlaneClient.defaultURL(endpoint))
                .send(method, target, contentType: body == nil ? nil : "application/json", body: body ?? [])
        } catch {
            throw CLIError(error.description)
        }
        guard (200..<300).contains(response.status) else {
            if let e = try? AdminJSON.decode(AdminError.self, from: response.body) {
                throw CLIError("\(e.error.code): \(e.error.message)")
            }
            throw CLIError("the control plane answered \(response.status): \(response.bodyText.prefix(300))")
        }
        if json { print(response.bodyText, terminator: response.bodyText.hasSuffix("\n") ? "" : "\n") }
        do {
            return try AdminJSON.decode(Answer.self, from: response.body)
        } catch {
            throw CLIError("unexpected answer from the control plane (\(error)): \(response.bodyText.prefix(300))")
        }
    }
}
