import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Puts the IMDS addresses (`169.254.169.254/32`, `fd00:ec2::254/128`) on an interface for
/// `imds serve --link-local`, and removes what it added.
public final class LinkLocalAddresses: Sendable {
    public static let ipv4 = "169.254.169.254"
    public static let ipv6 = "fd00:ec2::254"

    public let interface: String
    /// Addresses this process added (and so must remove); ones that were already there are left alone.
    public let added: [String]

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    private init(interface: String, added: [String]) {
        self.interface = interface
        self.added = added
    }

    /// What is missing to manage addresses and bind port 80, or nil when this process may.
    public static func missingPrivileges() -> String? {
        if geteuid() == 0 { return nil }
        // CapEff bits: CAP_NET_BIND_SERVICE = 10, CAP_NET_ADMIN = 12.
        var eff: UInt64 = 0
        if let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("CapEff:") }),
            let v = UInt64(line.split(separator: "\t").last.map(String.init)?.trimmingCharacters(in: .whitespaces) ?? "", radix: 16)
        {
            eff = v
        }
        var missing: [String] = []
        if eff & (1 << 12) == 0 { missing.append("CAP_NET_ADMIN (to add 169.254.169.254 to an interface)") }
        if eff & (1 << 10) == 0 { missing.append("CAP_NET_BIND_SERVICE (to listen on port 80)") }
        return missing.isEmpty ? nil : missing.joined(separator: " and ")
    }

    /// Adds the addresses to `interface` (IPv6 too when `ipv6` is true).
    public static func add(interface: String, ipv6: Bool) throws -> LinkLocalAddresses {
        guard FileManager.default.isExecutableFile(atPath: ipTool) else {
            throw Failure(description: "--link-local needs the `ip` tool from iproute2 (\(ipTool) not found): apt-get install iproute2")
        }
        let existing = run(["-o", "addr", "show", "dev", interface])
        guard existing.status == 0 else {
            throw Failure(description: "interface '\(interface)' not found (\(existing.output.trimmingCharacters(in: .whitespacesAndNewlines)))")
        }
        var added: [String] = []
        var wanted = [("\(ipv4)/32", ["-4"])]
        if ipv6 { wanted.append(("\(ipv6Address)/128", ["-6"])) }
        for (cidr, family) in wanted {
            let bare = String(cidr.split(separator: "/")[0])
            if existing.output.contains(" \(bare)/") { continue }
            var args = family + ["addr", "add", cidr, "dev", interface]
            if family == ["-6"] { args.append("nodad") }
            let r = run(args)
            guard r.status == 0 else {
                for a in added { _ = run(["addr", "del", a, "dev", interface]) }
                throw Failure(description: "cannot add \(cidr) to \(interface): \(r.output.trimmingCharacters(in: .whitespacesAndNewlines))")
            }
            added.append(cidr)
        }
        _ = run(["link", "set", interface, "up"])
        return LinkLocalAddresses(interface: interface, added: added)
    }

    private static let ipv6Address = ipv6

    /// Removes what ``add(interface:ipv6:)`` added.
    public func remove() { Self.remove(added, interface: interface) }

    /// Removes `added` (addresses in CIDR form that ``add(interface:ipv6:)`` added) from `interface`.
    public static func remove(_ added: [String], interface: String) {
        for a in added { _ = run(["addr", "del", a, "dev", interface]) }
    }

    static let ipTool = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"].first { FileManager.default.isExecutableFile(atPath: $0) } ?? "/usr/sbin/ip"

    static func run(_ args: [String]) -> (status: Int32, output: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: ipTool)
        p.arguments = args
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        do { try p.run() } catch { return (-1, "\(error)") }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}
