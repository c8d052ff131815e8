import Foundation
import IMDSScan
import Testing

/// The corpus under `Corpus/`, read through `#filePath` so the tests need no bundle resources.
enum Corpus {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Corpus").path

    struct Expectation: Sendable, CustomTestStringConvertible {
        var file: String
        /// `line → fixable`
        var findings: [Int: Bool]
        var testDescription: String { file }
    }

    /// Parses `expectations.txt`.
    static let expectations: [Expectation] = {
        let text = (try? String(contentsOfFile: directory + "/expectations.txt", encoding: .utf8)) ?? ""
        var out: [Expectation] = []
        for raw in text.split(separator: "\n") {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            guard let colon = line.range(of: ": ") else { continue }
            let file = String(line[line.startIndex..<colon.lowerBound])
            var findings: [Int: Bool] = [:]
            for token in line[colon.upperBound...].split(separator: " ") where token != "clean" {
                let parts = token.split(separator: ":")
                if let n = Int(parts[0]) { findings[n] = parts.count > 1 && parts[1] == "fix" }
            }
            out.append(Expectation(file: file, findings: findings))
        }
        return out
    }()
}

@Suite("Scan corpus")
struct ScanCorpusTests {
    @Test("expectations file lists at least 30 files")
    func expectationsLoaded() {
        #expect(Corpus.expectations.count >= 30)
    }

    @Test("findings per corpus file", arguments: Corpus.expectations)
    func corpusFile(_ e: Corpus.Expectation) throws {
        let path = Corpus.directory + "/" + e.file
        #expect(FileManager.default.fileExists(atPath: path), "missing corpus file \(e.file)")
        let report = IMDSScanner().scan(paths: [path])
        #expect(report.errors.isEmpty)
        #expect(report.filesScanned == 1, "\(e.file) was not recognised as a language the scanner reads")
        var got: [Int: Bool] = [:]
        for f in report.findings { got[f.line] = f.fixable }
        #expect(report.findings.count == got.count, "two findings on one line in \(e.file)")
        #expect(got == e.findings, "\(e.file): got \(got.sorted { $0.key < $1.key }), expected \(e.findings.sorted { $0.key < $1.key })")
    }

    @Test("walking the corpus scans exactly the files listed in expectations.txt")
    func walkMatchesExpectations() {
        let report = IMDSScanner().scan(paths: [Corpus.directory])
        #expect(report.errors.isEmpty)
        #expect(report.filesScanned == Corpus.expectations.count)
        let prefix = Corpus.directory + "/"
        let filesWithFindings = Set(report.findings.map { String($0.file.dropFirst(prefix.count)) })
        let expected = Set(Corpus.expectations.filter { !$0.findings.isEmpty }.map(\.file))
        #expect(filesWithFindings == expected)
        let total = Corpus.expectations.reduce(0) { $0 + $1.findings.count }
        #expect(report.findings.count == total)
    }

    @Test("fixing each fixable corpus file removes its fixable findings and is idempotent",
          arguments: Corpus.expectations.filter { $0.findings.values.contains(true) })
    func fixCorpusFile(_ e: Corpus.Expectation) throws {
        let path = Corpus.directory + "/" + e.file
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let language = try #require(LanguageDetector.detect(path: path, text: text)).language
        let fixed = try #require(ShellFixer.fix(text: text, language: language))
        #expect(fixed.requestsFixed == e.findings.values.filter { $0 }.count)
        let after = IMDSScanner().scan(text: fixed.text, path: path)
        #expect(after.filter(\.fixable).isEmpty, "still fixable after --fix: \(after)")
        #expect(after.count == e.findings.values.filter { !$0 }.count, "non-fixable findings must stay")
        #expect(ShellFixer.fix(text: fixed.text, language: language) == nil, "a second --fix must change nothing")
        #expect(fixed.text.components(separatedBy: "/latest/api/token").count - text.components(separatedBy: "/latest/api/token").count <= (language == .dockerfile ? 2 : 1),
                "one token fetch per script (per RUN in a Dockerfile)")
    }
}
