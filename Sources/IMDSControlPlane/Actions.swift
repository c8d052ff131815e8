import AWSQuery
import Foundation
import IMDSCore

// MARK: - Parameter parsing

extension EC2ControlPlane {
    static let tokensValues = ["optional", "required"]
    static let toggleValues = ["disabled", "enabled"]

    static func choice(_ p: QueryParameters, _ name: String, _ allowed: [String]) throws(EC2Error) -> String? {
        guard let v = p[name] else { return nil }
        guard allowed.contains(v) else { throw .invalidValue(v, for: name, allowed: allowed) }
        return v
    }

    static func hopLimit(_ p: QueryParameters, allowNoPreference: Bool) throws(EC2Error) -> Int?? {
        guard let raw = p["HttpPutResponseHopLimit"] else { return .none }
        guard let n = Int(raw) else {
            throw EC2Error("InvalidParameterValue", "Invalid value '\(raw)' for HttpPutResponseHopLimit: expected an integer")
        }
        if allowNoPreference && n == -1 { return .some(nil) }
        guard MetadataOptions.hopLimitRange.contains(n) else {
            let extra = allowNoPreference ? ", or -1 for no preference" : ""
            throw EC2Error("InvalidParameterValue", "The HttpPutResponseHopLimit value \(n) is not valid. Specify an integer from 1 to 64\(extra).")
        }
        return .some(n)
    }

    static func instanceIDs(_ ids: [String]) throws(EC2Error) {
        if let bad = ids.first(where: { !InstanceIDs.isWellFormed($0) }) { throw .instanceMalformed(bad) }
    }
}

// MARK: - DescribeInstances

extension EC2ControlPlane {
    func describeInstances(_ call: Call) async throws(EC2Error) -> [XMLNode] {
        let p = call.params
        let ids = p.list("InstanceId")
        try Self.instanceIDs(ids)
        var pageSize: Int?
        if let raw = p["MaxResults"] {
            if !ids.isEmpty {
                throw EC2Error("InvalidParameterCombination", "The parameter instancesSet cannot be used with the parameter maxResults")
            }
            guard let n = Int(raw), (5...1000).contains(n) else {
                throw EC2Error("InvalidParameterValue", "Value ( \(raw) ) for parameter maxResults is invalid. Expecting a value between 5 and 1000.")
            }
            pageSize = n
        }
        // NextToken: the id of the last instance of the previous page, base64url (instances are
        // listed in id order, so a page never repeats or skips one launched or ended meanwhile).
        var after: String?
        if let token = p["NextToken"] {
            guard let id = Self.pageCursor(token) else {
                throw EC2Error("InvalidParameterValue", "The specified NextToken '\(token)' is not valid")
            }
            after = id
        }
        let filters = try Self.parseFilters(p)
        let snapshot = store.snapshot
        let served = snapshot.instanceIDs
        let missing = ids.filter { !served.contains($0) }
        if !missing.isEmpty { throw .instanceNotFound(missing) }
        if call.dryRun { throw .dryRun }
        var wanted = ids.isEmpty ? served : served.filter { ids.contains($0) }
        if let after { wanted = Array(wanted.drop { $0 <= after }) }
        var reservations: [[XMLNode]] = []
        var nextToken: String?
        var lastListed = ""
        for id in wanted {
            if let pageSize, reservations.count == pageSize {
                nextToken = Self.pageToken(after: lastListed)
                break
            }
            guard let rt = snapshot.instance(id) else { continue }
            let values = InstanceDescription.filterValues(rt)
            var matches = true
            for f in filters {
                guard let have = values(f.name) else { throw .invalidFilter(f.name) }
                if !f.values.contains(where: { glob in have.contains { glob.matches($0) } }) { matches = false }
            }
            guard matches else { continue }
            let i = rt.instance
            reservations.append([
                .leaf("reservationId", i.reservationID),
                .leaf("ownerId", i.accountID),
                .node("groupSet", []),
                .list("instancesSet", [InstanceDescription.xml(rt)]),
            ])
            lastListed = id
        }
        var body: [XMLNode] = [.list("reservationSet", reservations)]
        if let nextToken { body.append(.leaf("nextToken", nextToken)) }
        return body
    }

    static func pageToken(after id: String) -> String {
        Data(("imds-page:" + id).utf8).base64EncodedString()
    }

    static func pageCursor(_ token: String) -> String? {
        guard token.count <= 200, let data = Data(base64Encoded: token), let text = String(data: data, encoding: .utf8),
            text.hasPrefix("imds-page:")
        else { return nil }
        let id = String(text.dropFirst("imds-page:".count))
        return InstanceIDs.isWellFormed(id) ? id : nil
    }

    /// At most this many `Filter.N`, and this many values in one filter (EC2 answers more with the same
    /// `FilterLimitExceeded`; it does not document its exact limits).
    static let maxFilters = 50
    static let maxFilterValues = 200

    /// The filters with their values compiled once (EC2 wildcards: `*`, `?`, `\` escapes).
    static func parseFilters(_ p: QueryParameters) throws(EC2Error) -> [(name: String, values: [Glob])] {
        let filters = p.filters
        guard filters.count <= maxFilters else {
            throw EC2Error("FilterLimitExceeded", "The request uses \(filters.count) filters; at most \(maxFilters) are allowed.")
        }
        var out: [(name: String, values: [Glob])] = []
        for f in filters {
            guard let name = f.name, !name.isEmpty else { throw .missingParameter("Filter.N.Name") }
            guard !f.values.isEmpty else {
                throw EC2Error("InvalidParameterValue", "The filter '\(name)' has no values: add Filter.N.Value.1")
            }
            guard f.values.count <= maxFilterValues else {
                throw EC2Error("FilterLimitExceeded", "The filter '\(name)' has \(f.values.count) values; at most \(maxFilterValues) are allowed.")
            }
            out.append((name, f.values.map { Glob($0, syntax: .ec2Filter) }))
        }
        return out
    }
}

extension EC2Error {
    static func invalidFilter(_ name: String) -> EC2Error { EC2Error("InvalidParameterValue", "The filter '\(name)' is invalid") }
}

// MARK: - ModifyInstanceMetadataOptions

extension EC2ControlPlane {
    func modifyInstanceMetadataOptions(_ call: Call) async throws(EC2Error) -> [XMLNode] {
        let p = call.params
        guard let id = p["InstanceId"] else { throw .missingParameter("InstanceId") }
        try Self.instanceIDs([id])
        var change = PartialMetadataOptions()
        change.httpTokens = try Self.choice(p, "HttpTokens", Self.tokensValues).flatMap(MetadataOptions.HTTPTokens.init(rawValue:))
        if case .some(let n) = try Self.hopLimit(p, allowNoPreference: false) { change.httpPutResponseHopLimit = n }
        change.httpEndpoint = try Self.choice(p, "HttpEndpoint", Self.toggleValues).flatMap(MetadataOptions.Toggle.init(rawValue:))
        change.httpProtocolIPv6 = try Self.choice(p, "HttpProtocolIpv6", Self.toggleValues).flatMap(MetadataOptions.Toggle.init(rawValue:))
        change.instanceMetadataTags = try Self.choice(p, "InstanceMetadataTags", Self.toggleValues).flatMap(MetadataOptions.Toggle.init(rawValue:))

        let options = try await commit(dryRun: call.dryRun) { (snapshot: StoreSnapshot) throws(EC2Error) -> (changes: [StoreChange], result: MetadataOptions) in
            let rt = try Self.runtime(id, in: snapshot)
            guard rt.state != .terminated else {
                throw EC2Error("IncorrectInstanceState", "The instance '\(id)' is not in a state from which its metadata options can be modified.")
            }
            if change.httpTokens == .optional, snapshot.accountDefaults.httpTokensEnforced == .enabled {
                throw EC2Error(
                    "UnsupportedOperation",
                    "IMDSv1 cannot be enabled on instance \(id) because HttpTokensEnforced is enabled in the account's instance metadata defaults. Keep HttpTokens required, or set HttpTokensEnforced to disabled with ModifyInstanceMetadataDefaults.")
            }
            let new = change.applied(to: rt.options)
            if new.instanceMetadataTags == .enabled, let bad = rt.tags.first(where: { !TagRules.isMetadataSafe($0.key) }) {
                throw EC2Error(
                    "InvalidParameterValue",
                    "Instance metadata tags cannot be enabled on instance \(id): the tag key '\(bad.key)' is not allowed in instance metadata (allowed: letters, digits and + - = . , _ : @; not '.', '..' or '_index').")
            }
            return ([.setOptions(instanceID: id, new)], new)
        }
        return [.leaf("instanceId", id), InstanceDescription.optionsXML("instanceMetadataOptions", options, state: "pending")]
    }
}

// MARK: - Account defaults

extension EC2ControlPlane {
    func getInstanceMetadataDefaults(_ call: Call) async throws(EC2Error) -> [XMLNode] {
        if call.dryRun { throw .dryRun }
        let d = store.snapshot.accountDefaults
        var fields: [XMLNode] = []
        if let v = d.httpTokens { fields.append(.leaf("httpTokens", v.rawValue)) }
        if let v = d.httpPutResponseHopLimit { fields.append(.leaf("httpPutResponseHopLimit", String(v))) }
        if let v = d.httpEndpoint { fields.append(.leaf("httpEndpoint", v.rawValue)) }
        if let v = d.instanceMetadataTags { fields.append(.leaf("instanceMetadataTags", v.rawValue)) }
        fields.append(.leaf("managedBy", "account"))
        if let v = d.httpTokensEnforced { fields.append(.leaf("httpTokensEnforced", v.rawValue)) }
        return [.node("accountLevel", fields)]
    }

    func modifyInstanceMetadataDefaults(_ call: Call) async throws(EC2Error) -> [XMLNode] {
        let p = call.params
        let pref = "no-preference"
        let tokens = try Self.choice(p, "HttpTokens", Self.tokensValues + [pref])
        let hop = try Self.hopLimit(p, allowNoPreference: true)
        let endpoint = try Self.choice(p, "HttpEndpoint", Self.toggleValues + [pref])
        let tags = try Self.choice(p, "InstanceMetadataTags", Self.toggleValues + [pref])
        let enforced = try Self.choice(p, "HttpTokensEnforced", Self.toggleValues + [pref])
        try await commit(dryRun: call.dryRun) { (snapshot: StoreSnapshot) throws(EC2Error) -> (changes: [StoreChange], result: Void) in
            var d = snapshot.accountDefaults
            if let tokens { d.httpTokens = MetadataOptions.HTTPTokens(rawValue: tokens) }
            if case .some(let h) = hop { d.httpPutResponseHopLimit = h }
            if let endpoint { d.httpEndpoint = MetadataOptions.Toggle(rawValue: endpoint) }
            if let tags { d.instanceMetadataTags = MetadataOptions.Toggle(rawValue: tags) }
            if let enforced { d.httpTokensEnforced = MetadataOptions.Toggle(rawValue: enforced) }
            return ([.setAccountDefaults(d)], ())
        }
        return [.leaf("return", "true")]
    }
}

// MARK: - Tags

extension EC2ControlPlane {
    /// `ResourceId.N`: instance ids that exist (only instances are taggable here).
    func taggableResources(_ p: QueryParameters, in snapshot: StoreSnapshot) throws(EC2Error) -> [String] {
        let ids = p.list("ResourceId")
        guard !ids.isEmpty else { throw .missingParameter("ResourceId.1") }
        for id in ids where !id.hasPrefix("i-") {
            throw EC2Error("InvalidID", "The ID '\(id)' is not valid: this endpoint only tags instances (i-…)")
        }
        try Self.instanceIDs(ids)
        let missing = ids.filter { snapshot.instance($0) == nil }
        if !missing.isEmpty { throw .instanceNotFound(missing) }
        var seen = Set<String>()
        return ids.filter { seen.insert($0).inserted }
    }

    func createTags(_ call: Call) async throws(EC2Error) -> [XMLNode] {
        let p = call.params
        let ids = try taggableResources(p, in: store.snapshot)
        let requested = p.tags
        guard !requested.isEmpty else { throw .missingParameter("Tag.1.Key") }
        var tags: [(key: String, value: String)] = []
        for (i, t) in requested.enumerated() {
            guard let key = t.key else { throw .missingParameter("Tag.\(i + 1).Key") }
            let value = t.value ?? ""
            if let why = TagRules.problem(key: key, value: value) { throw EC2Error("InvalidParameterValue", why) }
            tags.append((key, value))
        }
        try await commit(dryRun: call.dryRun) { (snapshot: StoreSnapshot) throws(EC2Error) -> (changes: [StoreChange], result: Void) in
            var changes: [StoreChange] = []
            for id in ids {
                let rt = try Self.runtime(id, in: snapshot)
                var record = rt.tags.map { InstanceTag(key: $0.key, value: $0.value) }
                for (key, value) in tags {
                    if rt.options.instanceMetadataTags == .enabled && !TagRules.isMetadataSafe(key) {
                        throw EC2Error(
                            "InvalidParameterValue",
                            "The tag key '\(key)' is not allowed while instance metadata tags are enabled on instance \(id) (allowed: letters, digits and + - = . , _ : @; not '.', '..' or '_index').")
                    }
                    if let i = record.firstIndex(where: { $0.key == key }) {
                        record[i].value = value
                    } else {
                        record.append(.init(key: key, value: value))
                    }
                }
                guard record.count <= TagRules.maxTagsPerResource else {
                    throw EC2Error("TagLimitExceeded", "The maximum number of tags per resource (\(TagRules.maxTagsPerResource)) would be exceeded on \(id)")
                }
                changes.append(.setTags(instanceID: id, record))
            }
            return (changes, ())
        }
        return [.leaf("return", "true")]
    }

    func deleteTags(_ call: Call) async throws(EC2Error) -> [XMLNode] {
        let p = call.params
        let ids = try taggableResources(p, in: store.snapshot)
        var selectors: [(key: String, value: String?)] = []
        for (i, t) in p.tags.enumerated() {
            guard let key = t.key else { throw .missingParameter("Tag.\(i + 1).Key") }
            selectors.append((key, t.value))
        }
        try await commit(dryRun: call.dryRun) { (snapshot: StoreSnapshot) throws(EC2Error) -> (changes: [StoreChange], result: Void) in
            var changes: [StoreChange] = []
            for id in ids {
                var tags = try Self.runtime(id, in: snapshot).tags.map { InstanceTag(key: $0.key, value: $0.value) }
                if selectors.isEmpty {
                    tags = []
                } else {
                    tags.removeAll { tag in
                        selectors.contains { $0.key == tag.key && ($0.value == nil || $0.value == tag.value) }
                    }
                }
                changes.append(.setTags(instanceID: id, tags))
            }
            return (changes, ())
        }
        return [.leaf("return", "true")]
    }

    func describeTags(_ call: Call) async throws(EC2Error) -> [XMLNode] {
        let p = call.params
        let filters = try Self.parseFilters(p)
        var maxResults: Int?
        if let raw = p["MaxResults"] {
            guard let n = Int(raw), (5...1000).contains(n) else {
                throw EC2Error("InvalidParameterValue", "Value ( \(raw) ) for parameter maxResults is invalid. Expecting a value between 5 and 1000.")
            }
            maxResults = n
        }
        var offset = 0
        if let token = p["NextToken"] {
            // Only what this server hands out: decimal digits, no sign or spaces.
            guard !token.isEmpty, token.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }), let n = Int(token) else {
                throw EC2Error("InvalidPaginationToken", "The specified pagination token '\(token)' is not valid")
            }
            offset = n
        }
        for f in filters where !["key", "value", "resource-id", "resource-type"].contains(f.name) && !f.name.hasPrefix("tag:") {
            throw .invalidFilter(f.name)
        }
        if call.dryRun { throw .dryRun }
        var rows: [(id: String, key: String, value: String)] = []
        let snapshot = store.snapshot
        for id in snapshot.instanceIDs {
            guard let rt = snapshot.instance(id) else { continue }
            for tag in rt.tags {
                let ok = filters.allSatisfy { f in
                    let have: [String]
                    switch f.name {
                    case "key": have = [tag.key]
                    case "value": have = [tag.value]
                    case "resource-id": have = [id]
                    case "resource-type": have = ["instance"]
                    default:
                        let wanted = String(f.name.dropFirst(4))
                        have = rt.tags.filter { $0.key == wanted }.map(\.value)
                    }
                    return f.values.contains { glob in have.contains { glob.matches($0) } }
                }
                if ok { rows.append((id, tag.key, tag.value)) }
            }
        }
        rows.sort { ($0.id, $0.key) < ($1.id, $1.key) }
        // A token is an offset this server handed out: never past the end, so `offset + maxResults`
        // below stays in range whatever number a caller sends.
        guard offset <= rows.count else {
            throw EC2Error("InvalidPaginationToken", "The specified pagination token '\(p["NextToken"] ?? "")' is not valid")
        }
        let page = Array(rows.dropFirst(offset).prefix(maxResults ?? rows.count))
        var out: [XMLNode] = [.list("tagSet", page.map { [
            .leaf("resourceId", $0.id), .leaf("resourceType", "instance"), .leaf("key", $0.key), .leaf("value", $0.value),
        ] })]
        if let maxResults, offset + maxResults < rows.count { out.append(.leaf("nextToken", String(offset + maxResults))) }
        return out
    }
}
