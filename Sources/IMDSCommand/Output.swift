#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import Foundation

/// Writing to standard output and standard error.
enum Output {
    /// Makes stdout line-buffered even when it is a pipe, so scripts waiting for the
    /// "listening" lines see them at once.
    static func lineBuffered() {
        setvbuf(stdout, nil, _IOLBF, 0)
    }
}

func writeStdout(_ bytes: [UInt8]) { FileHandle.standardOutput.write(Data(bytes)) }
func writeStdout(_ text: String) { writeStdout(Array(text.utf8)) }
func writeStderr(_ text: String) { FileHandle.standardError.write(Data(text.utf8)) }

enum JSONOutput {
    /// Pretty JSON with sorted keys and a final newline.
    static func render(_ value: Any) -> String {
        guard let data = try? JSONSerialization.data(
            withJSONObject: value, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes, .fragmentsAllowed])
        else { return "null\n" }
        return String(decoding: data, as: UTF8.self) + "\n"
    }

    /// A body as a JSON value: a string when it is UTF-8, else `{"base64": ...}`.
    static func body(_ bytes: [UInt8]) -> Any {
        if let s = String(validating: bytes, as: UTF8.self) { return s }
        return ["base64": Data(bytes).base64EncodedString()]
    }
}

/// A one-paragraph error for the user, printed without a stack trace; exit status 1.
struct CLIError: Error, CustomStringConvertible {
    var description: String
    init(_ message: String) { description = message }
}
