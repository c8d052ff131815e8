import AWSQuery
import Foundation
import IMDSControlPlane
import IMDSCore
import Testing

@Suite("SigV4 signing for STS")
struct SigV4STSTests {
    /// The same request signed by botocore's SigV4Auth (fixed clock): the signatures must match.
    @Test func matchesBotocore() async {
        let params = [
            ("Action", "AssumeRole"), ("Version", "2011-06-15"), ("RoleArn", "arn:aws:iam::123456789012:role/app-role"),
            ("RoleSessionName", "i-0abc1234def567890"), ("DurationSeconds", "3600"),
        ]
        let body = params.map { "\(SigV4.uriEncode($0.0))=\(SigV4.uriEncode($0.1))" }.joined(separator: "&")
        #expect(body == "Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fapp-role&RoleSessionName=i-0abc1234def567890&DurationSeconds=3600")
        let headers = SigV4.sign(
            method: "POST", target: "/",
            headers: [("Host", "127.0.0.1:5000"), ("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")],
            body: Array(body.utf8), accessKeyID: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            region: "us-east-1", service: "sts", date: TimeFormat.parseISO8601("2026-01-02T03:04:05Z")!)
        let auth = headers.first { $0.name == "Authorization" }?.value
        #expect(auth == "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260102/us-east-1/sts/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=4575387a17e3c46e68971f1e609943a935027cf16f6062036d29245d8760132b")
        #expect(headers.first { $0.name == "X-Amz-Date" }?.value == "20260102T030405Z")
    }
}
