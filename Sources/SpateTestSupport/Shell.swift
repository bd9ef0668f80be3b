import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A child process started with posix_spawn: its pid for signals (SIGKILL, SIGSTOP, SIGTERM),
/// its combined output in a log file, and a reliable `wait`.
///
/// (Foundation's `Process` is not used: on Linux it can miss the exit of a short-lived child
/// and block `waitUntilExit` forever.)
public final class ChildProcess: @unchecked Sendable {
    public let pid: Int32
    public let logPath: String
    private let lock = NSLock()
    private var exitStatus: Int32?

    /// Starts `executable` with `arguments`; stdin is /dev/null, stdout and stderr go to
    /// `logPath` (appended). The child gets this process's environment without any `SPATE_*`
    /// variable (a test's children are configured explicitly), plus `environment`.
    public init(_ executable: String, _ arguments: [String], environment: [String: String] = [:], logPath: String) throws {
        self.logPath = logPath
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, logPath, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // A process group of its own: a signal to the test runner's group does not reach it.
        // and with no signal blocked or ignored: the test runner's threads block most signals,
        // and a child inheriting that mask (a shell that never sees SIGCHLD or SIGTERM, a node
        // deaf to SIGTERM) behaves nothing like it does for a user.
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        posix_spawnattr_setpgroup(&attributes, 0)
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigmask(&attributes, &none)
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigdefault(&attributes, &all)

        let env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("SPATE_") }.merging(environment) { _, new in new }
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var child: Int32 = 0
        let rc = posix_spawn(&child, executable, &actions, &attributes, argv, envp)
        guard rc == 0 else { throw TestSupportError("posix_spawn \(executable): \(String(cString: strerror(rc)))") }
        pid = child
    }

    /// Sends `signal` (SIGTERM, SIGKILL, SIGSTOP, SIGCONT…).
    public func signal(_ signal: Int32) {
        kill(pid, signal)
    }

    /// Whether the process has not exited yet.
    public var isRunning: Bool {
        lock.lock()
        defer { lock.unlock() }
        if exitStatus != nil { return false }
        var status: Int32 = 0
        let r = waitpid(pid, &status, WNOHANG)
        if r == pid {
            exitStatus = Self.decode(status)
            return false
        }
        return r == 0
    }

    /// Waits for exit; returns the exit code (128 + signal when killed by a signal), or nil
    /// when `timeout` passed first.
    @discardableResult
    public func wait(timeout: Duration = .seconds(3600)) -> Int32? {
        let deadline = ContinuousClock.now + timeout
        while isRunning {
            if ContinuousClock.now >= deadline { return nil }
            usleep(10_000)
        }
        lock.lock()
        defer { lock.unlock() }
        return exitStatus
    }

    /// Resident memory of process `pid` in bytes (VmRSS), or nil when it is gone.
    public static func residentBytes(pid: Int32) -> Int64? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            let kb = line.split(separator: " ").compactMap { Int64($0) }.first
            return kb.map { $0 * 1024 }
        }
        return nil
    }

    /// The log's contents so far.
    public var output: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    private static func decode(_ status: Int32) -> Int32 {
        let signal = status & 0x7f
        return signal == 0 ? (status >> 8) & 0xff : 128 + signal
    }
}

/// Runs a program to completion and collects its combined output.
public enum Shell {
    public struct Result: Sendable {
        public var status: Int32
        public var output: String
    }

    /// Runs `executable` with `arguments` and waits for it to exit.
    public static func run(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) throws -> Result {
        let log = NSTemporaryDirectory() + "/spate-shell-\(UUID().uuidString).log"
        defer { unlink(log) }
        let child = try ChildProcess(executable, arguments, environment: environment, logPath: log)
        let status = child.wait() ?? -1
        return Result(status: status, output: child.output)
    }
}
