import Foundation
import SpateTestSupport
import Testing

@Suite("Project rules")
struct ProjectRulesTests {
    /// Swift files under Sources/ with the modules they import.
    func imports(of module: String) throws -> [String] {
        let root = Repository.root + "/Sources"
        let files = FileManager.default.enumerator(atPath: root)?.compactMap { $0 as? String }.filter { $0.hasSuffix(".swift") } ?? []
        return try files.filter { file in
            let text = try String(contentsOfFile: root + "/" + file, encoding: .utf8)
            return text.split(separator: "\n").contains { line in
                let words = line.split(separator: " ")
                guard let i = words.firstIndex(of: "import"), i + 1 < words.count else { return false }
                return words[..<i].allSatisfy { ["@_implementationOnly", "internal", "public", "package", "private", "fileprivate", "@preconcurrency"].contains($0) }
                    && words[i + 1] == module
            }
        }
    }

    @Test("librdkafka is imported only by SpateKafka")
    func rdkafkaConfined() throws {
        let users = try imports(of: "CRdKafka")
        #expect(!users.isEmpty)
        #expect(users.allSatisfy { $0.hasPrefix("SpateKafka/") }, "\(users)")
    }

    @Test("libcurl is imported only by SpateElastic")
    func curlConfined() throws {
        let users = try imports(of: "CCurl")
        #expect(!users.isEmpty)
        #expect(users.allSatisfy { $0.hasPrefix("SpateElastic/") }, "\(users)")
    }

    @Test("the committed protobuf-c code equals a fresh generation from Protos/")
    func generatedCodeCurrent() throws {
        let result = try Shell.run(Repository.root + "/cluster/gen-protos", ["--check"])
        #expect(result.status == 0, "\(result.output)")
    }
}
