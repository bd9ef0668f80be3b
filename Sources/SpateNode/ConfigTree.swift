import Foundation
import SpateYAML
import Yams

/// A configuration document as a tree of strings, read from YAML, with environment overrides
/// applied, and every key that is read marked — so unknown keys (typos) are reported.
final class ConfigTree {
    indirect enum Node {
        case scalar(String)
        case list([Node])
        case map([(String, Node)])

        subscript(key: String) -> Node? {
            if case .map(let pairs) = self { return pairs.last { $0.0 == key }?.1 }
            return nil
        }
    }

    private(set) var root: Node
    private var used: Set<String> = []

    init(yaml: String) throws {
        guard !yaml.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            root = .map([])
            return
        }
        let composed: Yams.Node?
        do { composed = try BoundedYAML.compose(yaml) } catch {
            throw ConfigurationError("(file)", "\(error)")
        }
        guard let composed else {
            root = .map([])
            return
        }
        root = try Self.convert(composed, path: "")
        guard case .map = root else { throw ConfigurationError("(file)", "the top level must be a mapping of sections") }
    }

    private static func convert(_ n: Yams.Node, path: String) throws -> Node {
        switch n {
        case .scalar(let s): return .scalar(s.string)
        case .sequence(let seq): return .list(try seq.enumerated().map { try convert($0.element, path: "\(path)[\($0.offset)]") })
        case .mapping(let m):
            return .map(try m.map { pair in
                guard case .scalar(let k) = pair.key else { throw ConfigurationError(path, "keys must be plain strings") }
                return (k.string, try convert(pair.value, path: path.isEmpty ? k.string : "\(path).\(k.string)"))
            })
        case .alias: throw ConfigurationError(path, "YAML aliases are not supported")
        }
    }

    /// Sets `section.key` to a scalar (environment and command-line overrides).
    func set(_ path: String, _ value: String) {
        let parts = path.split(separator: ".").map(String.init)
        root = Self.setting(root, parts[...], value)
    }

    private static func setting(_ node: Node, _ parts: ArraySlice<String>, _ value: String) -> Node {
        guard let head = parts.first else { return .scalar(value) }
        var pairs: [(String, Node)] = []
        if case .map(let p) = node { pairs = p }
        if let i = pairs.lastIndex(where: { $0.0 == head }) {
            pairs[i].1 = setting(pairs[i].1, parts.dropFirst(), value)
        } else {
            pairs.append((head, setting(.map([]), parts.dropFirst(), value)))
        }
        return .map(pairs)
    }

    /// The node at a dotted path, marking it (and its ancestors) as known.
    func node(_ path: String) -> Node? {
        var current: Node? = root
        var prefix = ""
        for part in path.split(separator: ".") {
            prefix = prefix.isEmpty ? String(part) : prefix + "." + part
            used.insert(prefix)
            current = current?[String(part)]
        }
        return current
    }

    func scalar(_ path: String) throws -> String? {
        guard let n = node(path) else { return nil }
        guard case .scalar(let s) = n else { throw ConfigurationError(path, "expected a single value") }
        return s
    }

    /// Marks a whole subtree as known (for free-form maps such as librdkafka properties).
    func markSubtree(_ path: String) {
        guard let n = node(path) else { return }
        func walk(_ n: Node, _ p: String) {
            used.insert(p)
            if case .map(let pairs) = n { for (k, v) in pairs { walk(v, p + "." + k) } }
        }
        walk(n, path)
    }

    /// Keys present in the document that nothing read.
    func unknownKeys() -> [String] {
        var out: [String] = []
        func walk(_ n: Node, _ p: String) {
            if !p.isEmpty && !used.contains(p) {
                out.append(p)
                return
            }
            if case .map(let pairs) = n { for (k, v) in pairs { walk(v, p.isEmpty ? k : p + "." + k) } }
        }
        walk(root, "")
        return out
    }
}
