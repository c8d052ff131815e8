import Foundation

/// The language a scanned file (or an embedded snippet) is written in.
public enum SourceLanguage: String, Sendable, Codable, CaseIterable {
    case shell
    case python
    case powershell
    case dockerfile
    case cloudInit = "cloud-init"
    case yaml
}

/// One request to the instance metadata service that does not carry an IMDSv2 session token.
public struct ScanFinding: Sendable, Equatable, Codable {
    /// The file, as given on the command line or found while walking a directory.
    public var file: String
    /// 1-based line of the request (for a command continued with `\`, the line of the command word).
    public var line: Int
    /// 1-based column of the command or call, counted in Unicode scalars; nil when only the line is known.
    public var column: Int?
    /// The language of the file (a `curl` inside cloud-config `runcmd` is `cloud-init`).
    public var language: SourceLanguage
    /// The client that makes the request: `curl`, `wget`, `requests`, `urllib`, `Invoke-RestMethod`, …
    public var kind: String
    /// The URL requested, with variables the scanner could resolve substituted.
    public var url: String
    /// A one-line explanation for people.
    public var reason: String
    /// Whether `imds scan --fix` can rewrite this request into the token form.
    public var fixable: Bool

    public init(file: String, line: Int, column: Int?, language: SourceLanguage, kind: String, url: String, reason: String, fixable: Bool) {
        self.file = file
        self.line = line
        self.column = column
        self.language = language
        self.kind = kind
        self.url = url
        self.reason = reason
        self.fixable = fixable
    }
}

/// A request found in source text, before it is attached to a file.
///
/// `fix` is set for shell `curl`/`wget` commands whose position in the original text is known, so
/// that ``ShellFixer`` can insert the token header after the command word.
struct DetectedRequest: Sendable {
    var line: Int
    var column: Int?
    var kind: String
    var url: String
    var fix: ShellFixSite?

    var reason: String {
        "\(kind) request to \(url.isEmpty ? "the instance metadata service" : url) without an IMDSv2 token (no X-aws-ec2-metadata-token header)"
    }
}

/// Where and how the fixer may rewrite one shell request.
struct ShellFixSite: Sendable, Equatable {
    /// Offset (in Unicode scalars of the scanned text) just after the command word.
    var insertAt: Int
    /// `curl` or `wget`.
    var tool: String
    /// The URL word as written (quotes and variables kept), used to derive the token endpoint.
    var rawURL: String
}
