import AWSQuery
import Foundation
import IMDSCore

extension SigV4 {
    /// Checks a control-plane request's signature against the configured keys (``SigV4`` does the
    /// work, with the same code the clients sign with). Returns the key that signed it, or the error
    /// EC2 would answer (see ``EC2Error/init(_:)``).
    public static func verify(
        _ request: IMDSRequest, keys: [ControlPlaneAccessKey], now: Date, service: String = "ec2"
    ) -> Result<ControlPlaneAccessKey, EC2Error> {
        let received = SigV4.Request(method: request.method, target: request.target, headers: request.headers, body: request.body)
        let credentials = keys.map { SigV4.Credentials(accessKeyID: $0.accessKeyID, secretAccessKey: $0.secretAccessKey) }
        switch verify(received, keys: credentials, now: now, service: service) {
        case .success(let signer):
            // The first configured key with that id, as the verifier found it.
            return .success(keys.first { $0.accessKeyID == signer.accessKeyID }!)
        case .failure(let rejection):
            return .failure(EC2Error(rejection))
        }
    }
}

extension EC2Error {
    /// The error EC2 answers for a refused signature: codes and statuses as in EC2's error list.
    public init(_ rejection: SigV4.Rejection) {
        switch rejection {
        case .missingAuthentication: self = .missingAuthentication
        case .incompleteSignature(let message): self = .incompleteSignature(message)
        case .authFailure: self = .authFailure
        case .requestExpired: self = .requestExpired
        case .scopeMismatch(let message): self = EC2Error("SignatureDoesNotMatch", message, status: 403)
        case .payloadNotSigned(let mode): self = .payloadNotSigned(mode)
        case .payloadHashMismatch: self = .payloadHashMismatch
        case .signatureMismatch: self = .signatureMismatch
        }
    }
}
