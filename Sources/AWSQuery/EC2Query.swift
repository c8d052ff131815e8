/// The EC2 flavour of the AWS Query protocol that imds speaks.
public enum EC2Query {
    /// The API version the control plane answers and the CLI asks for.
    public static let apiVersion = "2016-11-15"
}
