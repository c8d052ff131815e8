import Foundation
import IMDSCore
import Testing

@Suite("SigV4")
struct SigV4Tests {
    /// The same request signed by botocore's SigV4Auth (fixed clock): the signatures must match.
    @Test func matchesBotocore() {
        let body = SigV4.formBody([
            ("Action", "AssumeRole"), ("Version", "2011-06-15"), ("RoleArn", "arn:aws:iam::123456789012:role/app-role"),
            ("RoleSessionName", "i-0abc1234def567890"), ("DurationSeconds", "3600"),
        ])
        #expect(body == "Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fapp-role&RoleSessionName=i-0abc1234def567890&DurationSeconds=3600")
        let headers = SigV4.signedHeaders(
            host: "127.0.0.1:5000", contentType: "application/x-www-form-urlencoded; charset=utf-8", body: body,
            service: "sts", region: "us-east-1", accessKeyID: "AKIDEXAMPLE",
            secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            date: TimeFormat.parseISO8601("2026-01-02T03:04:05Z")!)
        let auth = headers.first { $0.0 == "Authorization" }?.1
        #expect(auth == "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260102/us-east-1/sts/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=4575387a17e3c46e68971f1e609943a935027cf16f6062036d29245d8760132b")
        #expect(headers.first { $0.0 == "X-Amz-Date" }?.1 == "20260102T030405Z")
    }
}
