#if canImport(Glibc)
@preconcurrency import Glibc
#endif

enum Output {
    /// Makes stdout line-buffered even when it is a pipe, so scripts waiting for the
    /// "listening" lines see them at once.
    static func lineBuffered() {
        setvbuf(stdout, nil, _IOLBF, 0)
    }
}
