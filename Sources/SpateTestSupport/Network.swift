import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A free TCP port on 127.0.0.1 (bound then released).
public func freePort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw TestSupportError("socket: \(errno)") }
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = 0
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    let ok = withUnsafeMutablePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
    }
    guard ok else { throw TestSupportError("bind: \(errno)") }
    return Int(UInt16(bigEndian: addr.sin_port))
}

/// A plain blocking TCP connection for protocol abuse tests: raw bytes in and out.
public final class RawConnection: @unchecked Sendable {
    private let fd: Int32
    public private(set) var closedByPeer = false

    public convenience init(address: String) throws {
        guard let port = Int(address.split(separator: ":").last ?? "") else { throw TestSupportError("bad address \(address)") }
        try self.init(port: port)
    }

    public init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestSupportError("socket: \(errno)") }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else {
            Glibc.close(fd)
            throw TestSupportError("connect to port \(port): errno \(errno)")
        }
    }

    deinit { Glibc.close(fd) }

    public func send(_ bytes: [UInt8]) throws {
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + sent, bytes.count - sent, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw TestSupportError("send: errno \(errno)") }
            sent += n
        }
    }

    private func wait(_ timeout: Duration) -> Bool {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let ms = Int32(timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)
        return poll(&p, 1, ms) > 0
    }

    /// Reads exactly `count` bytes, or throws on timeout or close.
    public func read(count: Int, timeout: Duration) throws -> [UInt8] {
        var out: [UInt8] = []
        let deadline = ContinuousClock.now + timeout
        while out.count < count {
            guard wait(deadline - .now), ContinuousClock.now < deadline || out.count < count else { throw TestSupportError("read timed out after \(out.count) bytes") }
            var buf = [UInt8](repeating: 0, count: count - out.count)
            let n = recv(fd, &buf, buf.count, 0)
            if n <= 0 {
                closedByPeer = true
                throw TestSupportError("closed after \(out.count) bytes")
            }
            out += buf[..<n]
        }
        return out
    }

    /// Reads until the peer closes (or `timeout`).
    public func readUntilClosed(timeout: Duration) throws -> [UInt8] {
        var out: [UInt8] = []
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            guard wait(deadline - .now) else { break }
            var buf = [UInt8](repeating: 0, count: 65536)
            let n = recv(fd, &buf, buf.count, 0)
            if n <= 0 {
                closedByPeer = true
                break
            }
            out += buf[..<n]
        }
        return out
    }

    public func close() { shutdown(fd, Int32(SHUT_RDWR)) }
}

/// A TCP listener that never accepts: connections complete in the kernel's backlog and
/// requests never get an answer — a store that hangs.
public final class BlackHoleServer: @unchecked Sendable {
    private let fd: Int32
    public let port: Int

    public init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.fd = fd
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
        }
        guard ok, listen(fd, 128) == 0 else { throw TestSupportError("black hole: errno \(errno)") }
        port = Int(UInt16(bigEndian: addr.sin_port))
    }

    public func close() { Glibc.close(fd) }
}

/// Tests/Tools/fault-proxy.py without faults: counts the requests a node makes to the store.
public final class CountingProxy: @unchecked Sendable {
    private let process: ChildProcess
    private let statsFile: String
    public let url: String

    /// - Parameters:
    ///   - catIndices: a file whose contents, when not empty, answer `GET /_cat/indices`.
    ///   - searchTotal: a file whose integer, when not empty, replaces every `_search` answer's
    ///     `hits.total.value`.
    public init(
        upstream: String, directory: String, item429: Double = 0, request503: Double = 0, deleteDelay: Double = 0, catIndices: String? = nil,
        searchTotal: String? = nil
    ) throws {
        let portFile = directory + "/counting-proxy.port"
        statsFile = portFile + ".stats"
        process = try ChildProcess(
            "/usr/bin/env",
            ["python3", Repository.root + "/Tests/Tools/fault-proxy.py", "--upstream", upstream, "--port-file", portFile,
             "--item-429", String(item429), "--request-503", String(request503), "--delete-delay", String(deleteDelay)]
                + (catIndices.map { ["--cat-indices", $0] } ?? []) + (searchTotal.map { ["--search-total", $0] } ?? []),
            logPath: directory + "/counting-proxy.log")
        var port = ""
        for _ in 0..<200 where port.isEmpty {
            port = (try? String(contentsOfFile: portFile, encoding: .utf8)) ?? ""
            usleep(20_000)
        }
        guard !port.isEmpty else { throw TestSupportError("the proxy did not start: \(process.output)") }
        url = "http://127.0.0.1:\(port)"
    }

    private var stats: [String: Any] {
        guard let data = FileManager.default.contents(atPath: statsFile),
            let o = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        else { return [:] }
        return o
    }

    /// `_search` requests forwarded so far.
    public var searches: Int { stats["searches"] as? Int ?? 0 }

    /// DELETE requests per path (index name).
    public var deletes: [String: Int] { stats["deletes"] as? [String: Int] ?? [:] }

    public func stop() {
        process.signal(SIGKILL)
        process.wait(timeout: .seconds(5))
    }
}
