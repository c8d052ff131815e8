import ArgumentParser
import AWSQuery
import Foundation
import IMDSClient

/// `imds options show|set`: the instance's metadata options through the control plane, for users
/// without the AWS CLI.
struct Options: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show or change an instance's metadata options through the control plane.",
        discussion: """
            Talks to `imds serve`'s control plane (the EC2 Query API). When IMDS_CONTROL_ACCESS_KEY_ID and \
            IMDS_CONTROL_SECRET_ACCESS_KEY (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY) are set, requests \
            are signed with AWS Signature Version 4.

            Exit status: 0 on success, 1 when the control plane answers with an EC2 error, 3 when it \
            cannot be reached.
            """,
        subcommands: [Show.self, Set.self])

    struct Connection: ParsableArguments {
        @Option(name: .long, help: ArgumentHelp("Control-plane URL (default: $IMDS_CONTROL_ENDPOINT or http://127.0.0.1:1339).", valueName: "url"))
        var endpoint: String?

        @Option(name: .long, help: "The instance (default: the only instance the server serves).")
        var instanceId: String?

        @Flag(name: .long, help: "Print the options as JSON, with the AWS CLI's key names.")
        var json = false

        var url: String { ControlPlaneClient.defaultURL(endpoint) }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the instance's metadata options (DescribeInstances).")
        @OptionGroup var connection: Connection

        func run() async throws {
            let client = try ControlPlaneCall(connection.url)
            var params = [("Action", "DescribeInstances"), ("Version", EC2Query.apiVersion)]
            if let id = connection.instanceId { params.append(("InstanceId.1", id)) }
            let xml = try await client.call(params)
            let found = EC2ResponseReader.metadataOptions(xml)
            guard let first = found.first else {
                FileHandle.standardError.write(Data("imds: the control plane describes no instance\n".utf8))
                throw ExitCode(1)
            }
            if found.count > 1 && connection.instanceId == nil {
                FileHandle.standardError.write(Data("imds: the server has \(found.count) instances (\(found.map(\.instanceID).joined(separator: ", "))); pass --instance-id\n".utf8))
                throw ExitCode(1)
            }
            OptionsPrinter.print(first.instanceID, first.options, json: connection.json)
        }
    }

    struct Set: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Change the instance's metadata options (ModifyInstanceMetadataOptions); options not given keep their value.")
        @OptionGroup var connection: Connection

        @Option(name: .long, help: "optional (IMDSv1 and v2) or required (IMDSv2 only).")
        var httpTokens: String?
        @Option(name: .long, help: "enabled or disabled (every request answers 403 when disabled).")
        var httpEndpoint: String?
        @Option(name: [.customLong("http-put-response-hop-limit"), .customLong("hop-limit")], help: "1 to 64.")
        var hopLimit: Int?
        @Option(name: .long, help: "enabled or disabled.")
        var httpProtocolIpv6: String?
        @Option(name: .long, help: "enabled or disabled (tags under meta-data/tags/instance/).")
        var instanceMetadataTags: String?

        func validate() throws {
            if httpTokens == nil && httpEndpoint == nil && hopLimit == nil && httpProtocolIpv6 == nil && instanceMetadataTags == nil {
                throw ValidationError("nothing to change: give at least one of --http-tokens, --http-endpoint, --http-put-response-hop-limit, --http-protocol-ipv6, --instance-metadata-tags.")
            }
        }

        func run() async throws {
            let client = try ControlPlaneCall(connection.url)
            var id = connection.instanceId
            if id == nil { id = try await client.onlyInstanceID() }
            guard let id else { throw ExitCode(1) }
            var params = [("Action", "ModifyInstanceMetadataOptions"), ("Version", EC2Query.apiVersion), ("InstanceId", id)]
            if let v = httpTokens { params.append(("HttpTokens", v)) }
            if let v = hopLimit { params.append(("HttpPutResponseHopLimit", String(v))) }
            if let v = httpEndpoint { params.append(("HttpEndpoint", v)) }
            if let v = httpProtocolIpv6 { params.append(("HttpProtocolIpv6", v)) }
            if let v = instanceMetadataTags { params.append(("InstanceMetadataTags", v)) }
            let xml = try await client.call(params)
            guard let result = EC2ResponseReader.metadataOptions(xml).first else {
                FileHandle.standardError.write(Data("imds: unexpected answer from the control plane:\n\(xml)\n".utf8))
                throw ExitCode(1)
            }
            OptionsPrinter.print(result.instanceID, result.options, json: connection.json)
        }
    }
}
