import Foundation

/// Decides how to read a file: by name (Dockerfile), extension, `#!` line, or content
/// (`#cloud-config`, `<powershell>`).
public enum LanguageDetector {
    /// The result of detection.
    public struct Detection: Sendable, Equatable {
        public var language: SourceLanguage
        /// Whether `--fix` may rewrite the file: `sh`/`bash`/`dash` scripts (by `#!` or `.sh`/`.bash`)
        /// and Dockerfiles.
        public var fixable: Bool
    }

    /// The language of the file at `path` with contents `text`, or nil when the scanner does not read it.
    public static func detect(path: String, text: String) -> Detection? {
        let name = (path.split(separator: "/").last.map(String.init) ?? path).lowercased()
        let firstLine = text.prefix(while: { $0 != "\n" && $0 != "\r\n" }).trimmed()

        if name == "dockerfile" || name == "containerfile" || name.hasPrefix("dockerfile.") || name.hasSuffix(".dockerfile")
            || name.hasSuffix(".containerfile")
        {
            return Detection(language: .dockerfile, fixable: true)
        }
        if firstLine.hasPrefix("#!"), let d = interpreterLanguage(shebang: firstLine) { return d }
        if firstLine.hasPrefix("#cloud-config") { return Detection(language: .cloudInit, fixable: false) }
        if firstLine.lowercased().hasPrefix("<powershell>") { return Detection(language: .powershell, fixable: false) }

        let ext = name.split(separator: ".").count > 1 ? String(name.split(separator: ".").last!) : ""
        switch ext {
        case "sh", "bash": return Detection(language: .shell, fixable: true)
        case "ksh", "zsh": return Detection(language: .shell, fixable: false)
        case "py", "pyw": return Detection(language: .python, fixable: false)
        case "ps1", "psm1": return Detection(language: .powershell, fixable: false)
        case "yml", "yaml": return Detection(language: .yaml, fixable: false)
        case "j2", "tpl", "tmpl", "template", "erb":
            // A template of another file (`user_data.sh.tpl`): read it as that file, but never rewrite it.
            let inner = String(path.dropLast(ext.count + 1))
            guard var d = detect(path: inner, text: text) else { return nil }
            d.fixable = false
            return d
        default: return nil
        }
    }

    /// The language named by a `#!` line.
    static func interpreterLanguage(shebang: String) -> Detection? {
        var words = shebang.dropFirst(2).split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard !words.isEmpty else { return nil }
        if ShellScanner.basename(words[0]) == "env" {
            words.removeFirst()
            while let w = words.first, w.hasPrefix("-") { words.removeFirst() }
        }
        guard let program = words.first.map(ShellScanner.basename) else { return nil }
        switch program {
        case "sh", "bash", "dash": return Detection(language: .shell, fixable: true)
        case "ash", "ksh", "zsh", "busybox": return Detection(language: .shell, fixable: false)
        case "pwsh", "powershell", "pwsh-preview": return Detection(language: .powershell, fixable: false)
        default:
            if program.hasPrefix("python") { return Detection(language: .python, fixable: false) }
            return nil
        }
    }
}
