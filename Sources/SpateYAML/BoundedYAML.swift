import Foundation
public import Yams

/// YAML read from files a person writes (a node's configuration, a dashboard), with what makes a
/// small file expand without bound refused: files over `maxBytes`, and documents of more than
/// `maxNodes` nodes, each alias (`*a`) counted as the whole node it repeats. Thirty levels of
/// `aN: &aN [*aN-1, *aN-1]` are 740 bytes and 2^30 nodes: reading them into strings took
/// gigabytes before anything checked a key.
public enum BoundedYAML {
    /// The largest file read, in bytes.
    public static let maxBytes = 1 << 20
    /// The most nodes (scalars, sequences, mappings) a document may hold.
    public static let maxNodes = 100_000

    /// Why a file was refused (the message names no key: the caller adds where it came from).
    public struct Refusal: Error, CustomStringConvertible {
        public let description: String
    }

    /// The text of the YAML file at `path` (a symbolic link is followed).
    /// - Throws: `Refusal` when it cannot be opened, is not a regular file, is larger than
    ///   `maxBytes`, or is not UTF-8.
    public static func read(path: String) throws -> String {
        // Non-blocking, so that opening a FIFO does not wait for a writer; the type is checked
        // on the open descriptor, and at most `maxBytes + 1` bytes are read from it.
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { throw Refusal(description: "cannot read \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw Refusal(description: "cannot read \(path): \(String(cString: strerror(errno)))") }
        guard info.st_mode & S_IFMT == S_IFREG else { throw Refusal(description: "\(path) is not a regular file") }
        var bytes = [UInt8](repeating: 0, count: maxBytes + 1)
        var count = 0
        while count < bytes.count {
            let n = bytes.withUnsafeMutableBytes { Foundation.read(fd, $0.baseAddress! + count, $0.count - count) }
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw Refusal(description: "cannot read \(path): \(String(cString: strerror(errno)))") }
            if n == 0 { break }
            count += n
        }
        guard count <= maxBytes else { throw Refusal(description: "\(path) is larger than \(maxBytes) bytes") }
        guard let text = String(validating: bytes[..<count], as: UTF8.self) else { throw Refusal(description: "\(path) is not UTF-8") }
        return text
    }

    /// Composes `text` into a node tree (nil for an empty document).
    /// - Throws: `Refusal` when the text is too long, is not YAML, or holds more than `maxNodes`
    ///   nodes with its aliases expanded.
    public static func compose(_ text: String) throws -> Node? {
        guard text.utf8.count <= maxBytes else { throw Refusal(description: "larger than \(maxBytes) bytes") }
        let root: Node?
        do { root = try Yams.compose(yaml: text) } catch { throw Refusal(description: "not valid YAML: \(error)") }
        guard let root else { return nil }
        // Yams resolves an alias while composing, to the node it names (shared, not copied), so
        // the tree is small in memory; walking it visits every repetition, and stops at the cap.
        var pending = [root]
        var seen = 0
        while let node = pending.popLast() {
            seen += 1
            guard seen <= maxNodes else { throw Refusal(description: "more than \(maxNodes) YAML nodes") }
            switch node {
            case .scalar, .alias: break
            case .sequence(let s): pending.append(contentsOf: s)
            case .mapping(let m):
                for (k, v) in m {
                    pending.append(k)
                    pending.append(v)
                }
            }
        }
        return root
    }
}
