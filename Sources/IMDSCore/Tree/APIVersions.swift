/// API versions and when categories appeared in them.
public enum APIVersions {
    /// The list a 2024 instance answers at `/` (imds-behaviour.md §1.2); `latest` is appended.
    public static let `default`: [String] = [
        "1.0", "2007-01-19", "2007-03-01", "2007-08-29", "2007-10-10", "2007-12-15", "2008-02-01",
        "2008-09-01", "2009-04-04", "2011-01-01", "2011-05-01", "2012-01-12", "2014-02-25", "2014-11-05",
        "2015-10-20", "2016-04-19", "2016-06-30", "2016-09-02", "2018-03-28", "2018-08-17", "2018-09-24",
        "2019-10-01", "2020-10-27", "2021-01-03", "2021-03-23", "2021-07-15", "2022-09-24", "2024-04-11",
    ]

    /// The version in which an item (path under the version root) appeared, from the EC2 user
    /// guide's "version when category was released" column. Items not listed exist in every version.
    public static let introduced: [String: String] = [
        "dynamic": "2009-04-04",
        "meta-data/ami-launch-index": "2007-01-19",
        "meta-data/ancestor-ami-ids": "2007-10-10",
        "meta-data/autoscaling": "2021-07-15",
        "meta-data/block-device-mapping": "2007-12-15",
        "meta-data/events": "2018-08-17",
        "meta-data/events/recommendations": "2020-10-27",
        "meta-data/iam": "2012-01-12",
        "meta-data/identity-credentials": "2018-09-24",
        "meta-data/instance-action": "2008-09-01",
        "meta-data/instance-life-cycle": "2019-10-01",
        "meta-data/instance-type": "2007-08-29",
        "meta-data/ipv6": "2021-01-03",
        "meta-data/kernel-id": "2008-02-01",
        "meta-data/local-hostname": "2007-01-19",
        "meta-data/mac": "2011-01-01",
        "meta-data/network": "2011-01-01",
        "meta-data/placement": "2008-02-01",
        "meta-data/placement/availability-zone-id": "2019-10-01",
        "meta-data/placement/group-name": "2020-08-24",
        "meta-data/placement/host-id": "2020-08-24",
        "meta-data/placement/partition-number": "2020-08-24",
        "meta-data/placement/region": "2020-08-24",
        "meta-data/product-codes": "2007-03-01",
        "meta-data/public-hostname": "2007-01-19",
        "meta-data/public-ipv4": "2007-01-19",
        "meta-data/ramdisk-id": "2007-10-10",
        "meta-data/services": "2014-02-25",
        "meta-data/services/partition": "2015-10-20",
        "meta-data/spot": "2014-11-05",
        "meta-data/spot/instance-action": "2016-11-15",
        "meta-data/tags": "2021-03-23",
    ]

    /// Whether the item at `path` (relative to the version root) exists in `version`.
    public static func isVisible(_ path: String, in version: String) -> Bool {
        guard version != "latest", let since = introduced[path] else { return true }
        return compare(since, version) <= 0
    }

    /// Orders `1.0` before every dated version; dates compare as text.
    static func compare(_ a: String, _ b: String) -> Int {
        if a == b { return 0 }
        if a == "1.0" { return -1 }
        if b == "1.0" { return 1 }
        return a < b ? -1 : 1
    }
}
