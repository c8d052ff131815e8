#if canImport(Glibc)
import Glibc
#endif

/// The process's descriptor limit (`RLIMIT_NOFILE`), which bounds the connections it can hold.
///
/// systemd starts services with a soft limit of 1024 (the hard limit is far higher), while each
/// listener's connection caps allow thousands: with the soft limit, an idle-connection flood runs
/// out of descriptors before the caps shed anything. So `imds serve` raises the soft limit to the
/// hard one at start, as Go's runtime does for every program.
public enum DescriptorLimit {
    /// Raises the soft limit to the hard limit. Returns the soft limit in force afterwards.
    @discardableResult
    public static func raiseToHardLimit() -> UInt64? {
        #if canImport(Glibc)
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return nil }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { return UInt64(raised.rlim_cur) }
        }
        return UInt64(limit.rlim_cur)
        #else
        return nil
        #endif
    }

    /// Descriptors the connection caps of `dataListeners` data-plane listeners and one control-plane
    /// listener may hold at once, with room for the process's own (stores, logs, loops, scans).
    public static func needed(dataListeners: Int, limits: ListenerLimits) -> UInt64 {
        let perListener = UInt64(max(0, limits.maxConnections))
        let (total, overflow) = perListener.multipliedReportingOverflow(by: UInt64(max(1, dataListeners + 1)))
        return overflow ? .max : total &+ 256
    }
}
