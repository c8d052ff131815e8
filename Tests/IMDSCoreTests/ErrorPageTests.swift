import Foundation
import IMDSCore
import Testing

@Suite("Error pages")
struct ErrorPageTests {
    /// The 404 page as captured from EC2 (imds-behaviour.md §2.6), 339 bytes.
    static let captured404 =
        "<?xml version=\"1.0\" encoding=\"iso-8859-1\"?>\n<!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0 Transitional//EN\"\n\t\t \"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd\">\n<html xmlns=\"http://www.w3.org/1999/xhtml\" xml:lang=\"en\" lang=\"en\">\n <head>\n  <title>404 - Not Found</title>\n </head>\n <body>\n  <h1>404 - Not Found</h1>\n </body>\n</html>\n"

    @Test func notFoundIsTheCapturedPage() {
        #expect(ErrorPage.notFound == Array(Self.captured404.utf8))
        #expect(ErrorPage.notFound.count == 339)
    }

    @Test(arguments: [(401, "Unauthorized", 345), (400, "Bad Request", 343), (403, "Forbidden", 339)])
    func templatePages(status: Int, reason: String, length: Int) {
        let page = ErrorPage.html(status: status, reason: reason)
        #expect(page.count == length)
        let expected = Self.captured404.replacingOccurrences(of: "404 - Not Found", with: "\(status) - \(reason)")
        #expect(page == Array(expected.utf8))
    }
}
