/// Choices made where the behaviour reference (imds-behaviour.md) marks EC2's behaviour as
/// uncertain. Each is listed, with its reasoning, in `docs/behaviour-choices.md`; a capture from a
/// real instance changes the value here and nowhere else.
public enum BehaviourChoices {
    /// Status for a token PUT carrying `X-Forwarded-For` (reference: "403 likely").
    public static let forwardedTokenRequestStatus = 403
    /// Whether a token-less GET carrying `X-Forwarded-For` is refused too (reference: unknown).
    public static let refuseForwardedGet = false
    /// An invalid token is a 401 even when `HttpTokens` is `optional` (reference: likely).
    public static let invalidTokenRejectedWhenOptional = true
    /// Directories requested without their trailing slash answer 301 to the slash form (seen on EC2
    /// for `iam/security-credentials`), except the shallow ones — `/latest`, `/latest/meta-data`,
    /// `/latest/dynamic` — which answer their listing, as `curl …/latest/meta-data` does on EC2.
    /// This is the number of path components up to which a listing is served without the slash.
    public static let listingWithoutSlashMaxDepth = 2
    /// The 301 `Location` uses the request's `Host` (so redirects work on any address); without a
    /// `Host` header it is `169.254.169.254`, as on EC2.
    public static let redirectHostFallback = "169.254.169.254"
    /// `//` in a path is treated as `/` (Amazon's own ec2-metadata script sends `latest//meta-data/`).
    public static let collapseDuplicateSlashes = true
    /// `user-data` is left out of the `/latest/` listing when the instance has none.
    public static let listUserDataOnlyWhenPresent = true
    /// `HttpEndpoint=disabled` answers 403 on every method and path, token PUT included.
    public static let disabledEndpointAnswers403 = true
    /// `OPTIONS` on the token path answers 200 with `Allow: OPTIONS, PUT` and an empty body.
    public static let optionsOnTokenPathAllowed = true
    /// Methods other than GET/HEAD on data paths answer 405 with this `Allow` header.
    public static let dataPathAllow = "GET, HEAD"
    /// Empty `events/maintenance/scheduled` and `history` answer `[]` (reference: emulators do).
    public static let emptyMaintenanceIsEmptyArray = true
}
