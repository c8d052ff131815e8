import ArgumentParser
import AWSQuery
import Foundation
import IMDSClient

/// One EC2 Query call over HTTP, signed when credentials are in the environment.
struct ControlPlaneCall {
    let client: ControlPlaneClient

    init(_ url: String) throws(ExitCode) {
        do {
            client = try ControlPlaneClient(url)
        } catch {
            FileHandle.standardError.write(Data("imds: \(error)\n".utf8))
            throw ExitCode(3)
        }
    }

    /// Sends the parameters; returns the XML body of a 200, or prints the EC2 error and exits 1
    /// (3 when the control plane cannot be reached).
    func call(_ params: [(String, String)]) async throws(ExitCode) -> String {
        let body = Array(QueryParameters(params.map { (name: $0.0, value: $0.1) }).formEncoded.utf8)
        let response: IMDSHTTPResponse
        do {
            response = try await client.send("POST", "/", contentType: "application/x-www-form-urlencoded; charset=utf-8", body: body)
        } catch {
            FileHandle.standardError.write(Data("imds: \(error)\n".utf8))
            throw ExitCode(3)
        }
        let text = response.bodyText
        guard response.status == 200 else {
            if let e = EC2ResponseReader.error(text) {
                FileHandle.standardError.write(Data("imds: the control plane refused: \(e.code): \(e.message)\n".utf8))
            } else {
                FileHandle.standardError.write(Data("imds: the control plane answered HTTP \(response.status): \(text.prefix(300))\n".utf8))
            }
            throw ExitCode(1)
        }
        return text
    }

    /// The id of the only instance the server serves.
    func onlyInstanceID() async throws(ExitCode) -> String {
        let found = EC2ResponseReader.metadataOptions(try await call([("Action", "DescribeInstances"), ("Version", EC2Query.apiVersion)]))
        guard found.count == 1 else {
            FileHandle.standardError.write(Data("imds: the server has \(found.count) instances; pass --instance-id\n".utf8))
            throw ExitCode(1)
        }
        return found[0].instanceID
    }
}
