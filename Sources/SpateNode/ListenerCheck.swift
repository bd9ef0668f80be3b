import Foundation

#if canImport(Glibc)
import Glibc
#endif

extension NodeConfiguration {
    /// Checks that every listener (`query.listen`, `metrics.listen`) can be bound, so that a port
    /// in use is a configuration error naming its key (exit 2) rather than a failure of a running
    /// service. The check binds and closes at once; port 0 (any free port) is not checked.
    /// - Throws: `ConfigurationError` naming the key, the address and the reason.
    public func checkListeners() throws {
        var listeners = [("query.listen", query.listen)]
        if let m = metrics.listen { listeners.append(("metrics.listen", m)) }
        for (key, address) in listeners {
            let (host, port) = try ConfigValue.listenAddress(address, key: key)
            guard port != 0 else { continue }
            if let problem = Self.bindProblem(host: host, port: port) {
                throw ConfigurationError(key, "cannot listen on \(address): \(problem)")
            }
        }
    }

    /// Why a TCP listener cannot bind `host:port` (as a server with SO_REUSEADDR would), or nil.
    static func bindProblem(host: String, port: Int) -> String? {
        var hints = addrinfo()
        hints.ai_flags = AI_PASSIVE
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let bare = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        let rc = getaddrinfo(bare, String(port), &hints, &list)
        guard rc == 0, let first = list else { return "cannot resolve \(host): \(String(cString: gai_strerror(rc)))" }
        defer { freeaddrinfo(list) }
        let fd = socket(first.pointee.ai_family, first.pointee.ai_socktype, first.pointee.ai_protocol)
        guard fd >= 0 else { return String(cString: strerror(errno)) }
        defer { close(fd) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        guard bind(fd, first.pointee.ai_addr, first.pointee.ai_addrlen) == 0 else {
            let e = errno
            return e == EADDRINUSE ? "the address is already in use (another spate-node or program listens there)" : String(cString: strerror(e))
        }
        return nil
    }
}
