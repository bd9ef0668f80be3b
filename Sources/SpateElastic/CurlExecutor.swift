internal import CCurl
import Foundation
import Synchronization

/// An HTTP request as SpateElastic sends it.
struct HTTPRequest: Sendable {
    var method: String
    var path: String
    var body: [UInt8]?
    var contentType: String = "application/json"
}

/// A raw HTTP answer.
public struct HTTPResponse: Sendable {
    public var status: Int
    public var body: [UInt8]
    public var text: String { String(decoding: body, as: UTF8.self) }
}

/// Runs blocking libcurl transfers on a fixed set of dedicated threads — never on Swift's
/// cooperative pool — each thread keeping one easy handle and so one keep-alive connection.
final class CurlExecutor: Sendable {
    private struct Job: Sendable {
        let request: HTTPRequest
        let continuation: CheckedContinuation<HTTPResponse, any Error>
        let cancelled: CancellationFlag
    }

    private let configuration: ElasticConfiguration
    private let jobs = Mutex<[Job]>([])
    private let available = DispatchSemaphore(value: 0)
    private let stopped = Atomic<Bool>(false)
    private let threadCount: Int
    private let finished = DispatchSemaphore(value: 0)
    /// The cancellation flags of transfers in progress: shutdown aborts them.
    private let inFlight = Mutex<[ObjectIdentifier: CancellationFlag]>([:])

    init(configuration: ElasticConfiguration) throws {
        if let ca = configuration.caFile, !FileManager.default.isReadableFile(atPath: ca) {
            throw ElasticError(.configuration, "CA file \(ca) is not readable")
        }
        guard configuration.url.hasPrefix("http://") || configuration.url.hasPrefix("https://") else {
            throw ElasticError(.configuration, "url must start with http:// or https://, got \(configuration.url)")
        }
        CurlGlobal.initialize()
        self.configuration = configuration
        threadCount = max(1, configuration.maxConcurrentRequests)
        for n in 0..<threadCount {
            let thread = Thread { [self] in self.run() }
            thread.name = "elastic-http-\(n)"
            thread.start()
        }
    }

    /// Requests waiting for a thread, at most: past it a request fails at once (a transport
    /// error, retriable) instead of queueing behind a store that does not keep up.
    var maxQueued: Int { max(1024, 64 * threadCount) }

    /// Sends `request` and returns the answer, whatever its status. Cancelling the calling
    /// task aborts the transfer (curl's progress callback checks a flag).
    func perform(_ request: HTTPRequest) async throws -> HTTPResponse {
        let flag = CancellationFlag()
        let limit = maxQueued
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                guard !stopped.load(ordering: .acquiring) else {
                    continuation.resume(throwing: ElasticError(.transport, "client is shut down"))
                    return
                }
                let queued = jobs.withLock { j -> Bool in
                    guard j.count < limit else { return false }
                    j.append(Job(request: request, continuation: continuation, cancelled: flag))
                    return true
                }
                guard queued else {
                    continuation.resume(
                        throwing: ElasticError(.transport, "\(limit) requests are already waiting for the store (\(request.method) \(request.path) not sent)", isRetriable: true))
                    return
                }
                available.signal()
            }
        } onCancel: {
            flag.set()
        }
    }

    /// Fails queued requests, aborts the transfers in progress (curl's progress callback sees
    /// their flags within a second) and ends the threads: a shutdown never waits out a
    /// request timeout.
    func shutdown() {
        guard !stopped.exchange(true, ordering: .acquiringAndReleasing) else { return }
        for flag in inFlight.withLock({ Array($0.values) }) { flag.set() }
        for _ in 0..<threadCount { available.signal() }
        for _ in 0..<threadCount { finished.wait() }
        for job in jobs.withLock({ j -> [Job] in defer { j = [] }; return j }) {
            job.continuation.resume(throwing: ElasticError(.transport, "client is shut down"))
        }
    }

    private func run() {
        let handle = CurlHandle(configuration: configuration)
        while true {
            available.wait()
            if stopped.load(ordering: .acquiring) { break }
            guard let job = jobs.withLock({ $0.isEmpty ? nil : $0.removeFirst() }) else { continue }
            if job.cancelled.isSet {
                job.continuation.resume(throwing: CancellationError())
                continue
            }
            let id = ObjectIdentifier(job.cancelled)
            inFlight.withLock { $0[id] = job.cancelled }
            // A shutdown that began before the flag was registered must still abort this one.
            if stopped.load(ordering: .acquiring) { job.cancelled.set() }
            job.continuation.resume(with: Result { try handle.perform(job.request, cancelled: job.cancelled) })
            inFlight.withLock { _ = $0.removeValue(forKey: id) }
        }
        finished.signal()
    }
}

private enum CurlGlobal {
    private static let once: Void = { curl_global_init(Int(CURL_GLOBAL_ALL)) }()
    static func initialize() { _ = once }
}

/// One libcurl easy handle, used by one thread.
private final class CurlHandle {
    private let h: UnsafeMutableRawPointer
    private let configuration: ElasticConfiguration
    private var sink = ResponseSink()

    init(configuration: ElasticConfiguration) {
        h = curl_easy_init()
        self.configuration = configuration
    }

    deinit { curl_easy_cleanup(h) }

    func perform(_ request: HTTPRequest, cancelled: CancellationFlag) throws -> HTTPResponse {
        curl_easy_reset(h)
        sink.body.removeAll(keepingCapacity: sink.body.capacity <= 16 << 20)
        sink.overflowed = false
        let url = configuration.url + request.path
        spate_curl_setopt_string(h, CURLOPT_URL, url)
        spate_curl_setopt_long(h, CURLOPT_NOSIGNAL, 1)
        spate_curl_setopt_long(h, CURLOPT_TIMEOUT_MS, configuration.requestTimeout.milliseconds)
        spate_curl_setopt_long(h, CURLOPT_CONNECTTIMEOUT_MS, configuration.connectTimeout.milliseconds)
        spate_curl_setopt_long(h, CURLOPT_TCP_KEEPALIVE, 1)
        if let ca = configuration.caFile { spate_curl_setopt_string(h, CURLOPT_CAINFO, ca) }
        var headers: UnsafeMutablePointer<curl_slist>? = nil
        headers = curl_slist_append(headers, "Content-Type: \(request.contentType)")
        headers = curl_slist_append(headers, "Expect:")
        switch configuration.authentication {
        case .none: break
        case .basic(let user, let password):
            spate_curl_setopt_long(h, CURLOPT_HTTPAUTH, 1)  // CURLAUTH_BASIC
            spate_curl_setopt_string(h, CURLOPT_USERNAME, user)
            spate_curl_setopt_string(h, CURLOPT_PASSWORD, password)
        case .apiKey(let key):
            headers = curl_slist_append(headers, "Authorization: ApiKey \(key)")
        }
        defer { curl_slist_free_all(headers) }
        spate_curl_setopt_slist(h, CURLOPT_HTTPHEADER, headers)
        if request.method == "HEAD" {
            spate_curl_setopt_long(h, CURLOPT_NOBODY, 1)
        } else {
            spate_curl_setopt_string(h, CURLOPT_CUSTOMREQUEST, request.method)
        }
        spate_curl_setopt_callback(h, CURLOPT_WRITEFUNCTION, writeCallback)
        let sinkPointer = Unmanaged.passUnretained(sink).toOpaque()
        spate_curl_setopt_pointer(h, CURLOPT_WRITEDATA, sinkPointer)
        spate_curl_setopt_long(h, CURLOPT_NOPROGRESS, 0)
        spate_curl_setopt_progress(h, progressCallback)
        spate_curl_setopt_pointer(h, CURLOPT_XFERINFODATA, Unmanaged.passUnretained(cancelled).toOpaque())

        let rc: CURLcode
        if let body = request.body {
            rc = body.withUnsafeBytes { raw in
                spate_curl_setopt_pointer(h, CURLOPT_POSTFIELDS, UnsafeMutableRawPointer(mutating: raw.baseAddress))
                spate_curl_setopt_off(h, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(raw.count))
                return curl_easy_perform(h)
            }
        } else {
            rc = curl_easy_perform(h)
        }
        if rc == CURLE_ABORTED_BY_CALLBACK { throw CancellationError() }
        if sink.overflowed {
            throw ElasticError(.decoding, "\(request.method) \(request.path): the answer exceeds \(maxResponseBytes) bytes")
        }
        guard rc == CURLE_OK else {
            let reason = String(cString: curl_easy_strerror(rc))
            let what = "\(request.method) \(request.path): \(reason)"
            if rc == CURLE_OPERATION_TIMEDOUT { throw ElasticError(.timeout, what, isRetriable: true) }
            let retriable = rc != CURLE_SSL_CACERT_BADFILE && rc != CURLE_PEER_FAILED_VERIFICATION
                && rc != CURLE_URL_MALFORMAT && rc != CURLE_UNSUPPORTED_PROTOCOL
            throw ElasticError(.transport, what, isRetriable: retriable)
        }
        var status = 0
        spate_curl_getinfo_long(h, CURLINFO_RESPONSE_CODE, &status)
        return HTTPResponse(status: status, body: sink.body)
    }
}

private final class ResponseSink {
    var body: [UInt8] = []
    /// Set when the answer passed `maxResponseBytes` and the transfer was cut.
    var overflowed = false
}

/// The largest answer read from the store (a search of 10,000 hits with sketches is tens of
/// MB); a larger one is refused, never buffered without bound.
let maxResponseBytes = 256 << 20

private let writeCallback: spate_curl_data_cb = { ptr, size, count, userdata in
    guard let ptr, let userdata else { return 0 }
    let sink = Unmanaged<ResponseSink>.fromOpaque(userdata).takeUnretainedValue()
    let n = size * count
    if sink.body.count + n > maxResponseBytes {
        sink.overflowed = true
        return 0  // curl ends the transfer with CURLE_WRITE_ERROR
    }
    ptr.withMemoryRebound(to: UInt8.self, capacity: n) { sink.body.append(contentsOf: UnsafeBufferPointer(start: $0, count: n)) }
    return n
}

/// Set when the task waiting for a transfer is cancelled; curl's progress callback reads it.
final class CancellationFlag: Sendable {
    private let value = Atomic<Bool>(false)
    var isSet: Bool { value.load(ordering: .relaxed) }
    func set() { value.store(true, ordering: .relaxed) }
}

/// Aborts the transfer (non-zero return) once its task was cancelled.
private let progressCallback: spate_curl_progress_cb = { userdata, _, _, _, _ in
    guard let userdata else { return 0 }
    return Unmanaged<CancellationFlag>.fromOpaque(userdata).takeUnretainedValue().isSet ? 1 : 0
}
