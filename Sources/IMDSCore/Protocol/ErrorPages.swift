import IMDSWire

/// The HTML error pages EC2 sends, byte for byte (imds-behaviour.md §2.6).
///
/// The 404 page is a capture (339 bytes). The other codes use the same template with `NNN - Reason`
/// in `<title>` and `<h1>`; that is an inference recorded in `docs/behaviour-choices.md`.
public enum ErrorPage {
    /// The page for a status, titled with its reason phrase from ``HTTPStatus`` (the standard
    /// phrase: EC2's 405 has no page, so its `Not Allowed` never appears in one).
    public static func html(status: Int) -> [UInt8] { html(status: status, reason: HTTPStatus.reason(status)) }

    /// The page for a status and reason, e.g. `errorPage(404, "Not Found")`.
    public static func html(status: Int, reason: String) -> [UInt8] {
        let title = "\(status) - \(reason)"
        let page =
            "<?xml version=\"1.0\" encoding=\"iso-8859-1\"?>\n"
            + "<!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0 Transitional//EN\"\n"
            + "\t\t \"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd\">\n"
            + "<html xmlns=\"http://www.w3.org/1999/xhtml\" xml:lang=\"en\" lang=\"en\">\n"
            + " <head>\n"
            + "  <title>\(title)</title>\n"
            + " </head>\n"
            + " <body>\n"
            + "  <h1>\(title)</h1>\n"
            + " </body>\n"
            + "</html>\n"
        return Array(page.utf8)
    }

    public static let notFound = html(status: 404)
    public static let unauthorized = html(status: 401)
    public static let badRequest = html(status: 400)
    public static let forbidden = html(status: 403)
}
