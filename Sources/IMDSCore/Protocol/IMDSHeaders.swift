/// Header names of the IMDS protocol (matched case-insensitively on requests).
public enum IMDSHeader {
    /// The session token on IMDSv2 requests.
    public static let token = "X-aws-ec2-metadata-token"
    /// The requested TTL on the token PUT.
    public static let tokenTTLRequest = "X-aws-ec2-metadata-token-ttl-seconds"
    /// The TTL echo on the token response and the remaining TTL on token-authenticated responses,
    /// spelled as EC2 sends it.
    public static let tokenTTLResponse = "X-Aws-Ec2-Metadata-Token-Ttl-Seconds"
    public static let forwardedFor = "X-Forwarded-For"
}
