import ArgumentParser

@main
struct IMDS: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "imds",
        abstract: "A faithful Amazon EC2 Instance Metadata Service (IMDSv1 + IMDSv2).",
        discussion: """
            `imds serve` serves the embedded default instance on 127.0.0.1:1338 (data plane) and \
            127.0.0.1:1339 (control plane: the EC2 API for `aws ec2 …`, and the admin API).

            The other commands are clients: of the data plane (get, ls, dump, token, doctor), of \
            the control plane (options, events, faults, audit), or of your source tree (scan).
            """,
        version: "0.1.0",
        subcommands: [
            Serve.self, Get.self, Ls.self, Dump.self, Token.self, Doctor.self, Scan.self, Options.self,
            Events.self, Faults.self, Identity.self, Audit.self,
        ]
    )
}
