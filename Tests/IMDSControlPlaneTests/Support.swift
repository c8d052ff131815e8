import AWSQuery
import Foundation
import FoundationXML
import IMDSControlPlane
import IMDSCore
import Testing

/// A parsed XML element, for asserting on response structure (the botocore parser is too lenient).
final class XMLElementNode {
    let name: String
    let namespace: String?
    var children: [XMLElementNode] = []
    var text = ""
    init(name: String, namespace: String?) {
        self.name = name
        self.namespace = namespace
    }

    func child(_ name: String) -> XMLElementNode? { children.first { $0.name == name } }
    /// Follows a path of child names.
    func at(_ path: String) -> XMLElementNode? {
        var node: XMLElementNode? = self
        for part in path.split(separator: "/") { node = node?.child(String(part)) }
        return node
    }
    func value(_ path: String) -> String? { at(path)?.text }
    var childNames: [String] { children.map(\.name) }

    static func parse(_ text: String) -> XMLElementNode? {
        final class Builder: NSObject, XMLParserDelegate {
            var stack: [XMLElementNode] = []
            var root: XMLElementNode?
            func parser(_ parser: XMLParser, didStartElement elementName: String, namespaceURI: String?,
                        qualifiedName qName: String?, attributes attributeDict: [String: String] = [:]) {
                let node = XMLElementNode(name: elementName, namespace: namespaceURI?.isEmpty == true ? nil : namespaceURI)
                stack.last?.children.append(node)
                if root == nil { root = node }
                stack.append(node)
            }
            func parser(_ parser: XMLParser, didEndElement elementName: String, namespaceURI: String?, qualifiedName qName: String?) {
                _ = stack.popLast()
            }
            func parser(_ parser: XMLParser, foundCharacters string: String) {
                guard let top = stack.last else { return }
                top.text += string
            }
        }
        let p = XMLParser(data: Data(text.utf8))
        p.shouldProcessNamespaces = true
        let b = Builder()
        p.delegate = b
        guard p.parse() else { return nil }
        // Element text is only meaningful for leaves; trim the indentation whitespace.
        func clean(_ n: XMLElementNode) {
            if !n.children.isEmpty { n.text = "" }
            n.children.forEach(clean)
        }
        if let r = b.root { clean(r) }
        return b.root
    }
}

/// A control plane over the embedded default instance with a manual clock and fixed request ids.
struct Harness {
    static let instanceID = "i-0abc1234def567890"
    let clock: ManualClock
    let store: EmbeddedInstanceStore
    let engine: IMDSEngine
    let controlPlane: EC2ControlPlane

    /// - Parameter open: opens the store (a durable one, say); an in-memory store for `config` when nil.
    init(config: IMDSConfig = .embeddedDefault, accessKeys: [ControlPlaneAccessKey] = [],
         accountDefaults: AccountDefaults? = nil, open: ((IMDSConfig, ManualClock) throws -> EmbeddedInstanceStore)? = nil) rethrows {
        clock = ManualClock(Date(timeIntervalSince1970: 1_767_323_045))  // 2026-01-02T03:04:05Z
        var config = config
        if let accountDefaults { config.accountDefaults = accountDefaults }
        store = try open?(config, clock) ?? EmbeddedInstanceStore(config: config, clock: clock)
        engine = IMDSEngine(clock: clock)
        controlPlane = EC2ControlPlane(store: store, accessKeys: accessKeys, clock: clock,
                                       requestID: { "11111111-2222-3333-4444-555555555555" })
    }

    init(yaml: String) throws {
        self.init(config: try IMDSConfig.parse(Data(yaml.utf8), isJSON: false))
    }

    /// POSTs form parameters (already in `name=value` order), as the AWS CLI does.
    func call(_ params: [(String, String)], headers: [(String, String)] = []) async -> IMDSResponse {
        let body = params.map { "\(SigV4.uriEncode($0.0))=\(SigV4.uriEncode($0.1))" }.joined(separator: "&")
        return await post(body, headers: headers)
    }

    func post(_ body: String, headers: [(String, String)] = []) async -> IMDSResponse {
        await controlPlane.handle(IMDSRequest(
            method: "POST", target: "/",
            headers: [("Host", "127.0.0.1:1339"), ("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")] + headers.map { ($0.0, $0.1) },
            peer: PeerAddress(ip: "127.0.0.1", port: 50000), body: Array(body.utf8)))
    }

    func action(_ name: String, _ params: [(String, String)] = []) async -> IMDSResponse {
        await call([("Action", name), ("Version", "2016-11-15")] + params)
    }

    var dataPlane: DataPlane { DataPlane(engine: engine, store: store) }

    /// A data-plane GET without a token (IMDSv1).
    func dataStatus(_ path: String = "/latest/meta-data/instance-id") -> Int {
        dataPlane.respond(to: IMDSRequest(method: "GET", target: path, peer: PeerAddress(ip: "127.0.0.1", port: 40000))).status
    }

    func dataBody(_ path: String) -> String {
        dataPlane.respond(to: IMDSRequest(method: "GET", target: path, peer: PeerAddress(ip: "127.0.0.1", port: 40000))).bodyText
    }
}

/// Asserts an EC2 error response: status, exact XML shape, code.
func expectError(_ r: IMDSResponse, _ code: String, status: Int = 400, sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(r.status == status, "status for \(code): \(r.bodyText)", sourceLocation: sourceLocation)
    #expect(r.header("Content-Type") == "text/xml;charset=UTF-8", sourceLocation: sourceLocation)
    let x = XMLElementNode.parse(r.bodyText)
    #expect(x?.name == "Response", sourceLocation: sourceLocation)
    #expect(x?.namespace == nil, sourceLocation: sourceLocation)
    #expect(x?.childNames == ["Errors", "RequestID"], sourceLocation: sourceLocation)
    #expect(x?.at("Errors")?.childNames == ["Error"], sourceLocation: sourceLocation)
    #expect(x?.at("Errors/Error")?.childNames == ["Code", "Message"], sourceLocation: sourceLocation)
    #expect(x?.value("Errors/Error/Code") == code, "\(r.bodyText)", sourceLocation: sourceLocation)
    #expect(x?.value("RequestID") == "11111111-2222-3333-4444-555555555555", sourceLocation: sourceLocation)
    #expect(r.bodyText.hasPrefix("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>"), sourceLocation: sourceLocation)
}

/// Asserts a successful response and returns its parsed root, checking the root name and namespace.
@discardableResult
func expectOK(_ r: IMDSResponse, _ action: String, sourceLocation: SourceLocation = #_sourceLocation) -> XMLElementNode? {
    #expect(r.status == 200, "\(r.bodyText)", sourceLocation: sourceLocation)
    #expect(r.header("Content-Type") == "text/xml;charset=UTF-8", sourceLocation: sourceLocation)
    #expect(r.header("Content-Length") == String(r.body.count), sourceLocation: sourceLocation)
    let x = XMLElementNode.parse(r.bodyText)
    #expect(x?.name == "\(action)Response", sourceLocation: sourceLocation)
    #expect(x?.namespace == "http://ec2.amazonaws.com/doc/2016-11-15/", sourceLocation: sourceLocation)
    #expect(x?.childNames.first == "requestId", sourceLocation: sourceLocation)
    #expect(x?.value("requestId") == "11111111-2222-3333-4444-555555555555", sourceLocation: sourceLocation)
    return x
}
