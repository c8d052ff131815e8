import Foundation
import IMDSCore
import IMDSTesting

/// The example config from PRODUCT.md, exactly as published.
let productExampleYAML = """
    instance:
      instance-id: i-0abc1234def567890
      account-id: "123456789012"
      ami-id: ami-0123456789abcdef0
      instance-type: t3.micro
      availability-zone: ap-northeast-1a        # region: ap-northeast-1
      local-ipv4: 10.0.1.23
      public-ipv4: 203.0.113.10                 # omit: public-ipv4 and public-hostname answer 404
      mac: 0e:12:34:56:78:9a
      security-groups: [default]
      user-data: |
        #!/bin/bash
        echo hello
      iam:
        role: app-role
      tags:
        Name: web-1
        Env: dev
      metadata-options:
        http-tokens: optional                   # optional | required
        http-endpoint: enabled                  # enabled | disabled
        http-put-response-hop-limit: 1          # 1..64
        http-protocol-ipv6: disabled            # enabled | disabled
        instance-metadata-tags: enabled         # enabled | disabled
    """

let ttlHeader = "X-aws-ec2-metadata-token-ttl-seconds"
let tokenHeader = "X-aws-ec2-metadata-token"

func makeIMDS(_ yaml: String = productExampleYAML, clock: ManualClock = ManualClock()) throws -> TestIMDS {
    try TestIMDS(yaml: yaml, manualClock: clock)
}

extension TestIMDS {
    func get(_ path: String, token: String? = nil, headers: [(String, String)] = []) -> IMDSResponse {
        var h = headers
        if let token { h.append((tokenHeader, token)) }
        return request("GET", path, headers: h)
    }
}
