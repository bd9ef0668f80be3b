public import SpateJSON
public import Logging

/// A small, real Elasticsearch/OpenSearch client: index templates, bulk with per-item results,
/// search (raw or typed aggregations), index administration and documents by id.
///
/// Blocking libcurl work runs on the client's own threads; every method is `async` and safe to
/// call from any task. At most `maxConcurrentRequests` requests are in flight at once, and at
/// most `max(1024, 64 × maxConcurrentRequests)` wait for one: past that a request fails at
/// once with a retriable `transport` error.
public final class ElasticClient: Sendable {
    public let configuration: ElasticConfiguration
    private let executor: CurlExecutor
    private let logger: Logger

    /// - Throws: `configuration` for an unusable URL or unreadable CA file.
    public init(configuration: ElasticConfiguration, logger: Logger = Logger(label: "spate.elastic")) throws {
        self.configuration = configuration
        self.logger = logger
        executor = try CurlExecutor(configuration: configuration)
    }

    deinit { executor.shutdown() }

    /// Stops the client's threads; pending calls fail with `transport`.
    public func shutdown() { executor.shutdown() }

    // MARK: raw requests

    /// Sends a request and returns the answer whatever its status.
    public func send(_ method: String, _ path: String, body: [UInt8]? = nil, contentType: String = "application/json") async throws -> HTTPResponse {
        try await executor.perform(HTTPRequest(method: method, path: path, body: body, contentType: contentType))
    }

    /// Sends a request, requires a 2xx answer and parses it as JSON.
    public func json(_ method: String, _ path: String, body: JSONValue? = nil) async throws -> JSONValue {
        let response = try await send(method, path, body: body.map(JSONWriter.encode))
        try Self.requireSuccess(response, method, path)
        return try Self.parse(response, path)
    }

    static func requireSuccess(_ response: HTTPResponse, _ method: String, _ path: String) throws {
        guard (200..<300).contains(response.status) else {
            throw ElasticError.http(response.status, "\(method) \(path): \(Self.errorReason(response))")
        }
    }

    static func parse(_ response: HTTPResponse, _ path: String) throws -> JSONValue {
        do { return try JSONParser.parse(response.body) } catch {
            throw ElasticError(.decoding, "\(path): \(error)")
        }
    }

    /// The `error.type: error.reason` of an ES error body, or the raw text.
    static func errorReason(_ response: HTTPResponse) -> String {
        if let v = try? JSONParser.parse(response.body), let e = v["error"] {
            if let type = e["type"]?.stringValue {
                return "\(type): \(e["reason"]?.stringValue ?? "")"
            }
            if let s = e.stringValue { return s }
        }
        return String(response.text.prefix(300))
    }

    // MARK: cluster and indices

    /// `GET /_cluster/health`: "green", "yellow" or "red".
    public func health() async throws -> String {
        let v = try await json("GET", "/_cluster/health")
        guard let status = v["status"]?.stringValue else { throw ElasticError(.decoding, "health without status") }
        return status
    }

    /// Creates or replaces a composable index template.
    public func putIndexTemplate(name: String, body: JSONValue) async throws {
        _ = try await json("PUT", "/_index_template/\(Self.escapePath(name))", body: body)
    }

    /// The template's body, or nil when there is none.
    public func getIndexTemplate(name: String) async throws -> JSONValue? {
        let path = "/_index_template/\(Self.escapePath(name))"
        let r = try await send("GET", path)
        if r.status == 404 { return nil }
        try Self.requireSuccess(r, "GET", path)
        let v = try Self.parse(r, path)
        return v["index_templates"]?[0]?["index_template"]
    }

    /// The largest `docs.count` or `store.size` taken from `_cat/indices` (2^53, 8 PiB): a
    /// larger or negative one is a broken answer, refused with an error.
    public static let maxIndexCount: Int64 = 1 << 53

    /// `_cat/indices` for `pattern` (e.g. `spate-*`), sizes in bytes. Empty when none match.
    public func catIndices(_ pattern: String) async throws -> [IndexInfo] {
        let path = "/_cat/indices/\(Self.escapePath(pattern))?format=json&bytes=b"
        let r = try await send("GET", path)
        if r.status == 404 { return [] }
        try Self.requireSuccess(r, "GET", path)
        guard let rows = try Self.parse(r, path).arrayValue else { throw ElasticError(.decoding, "\(path): not an array") }
        return try rows.compactMap { row in
            guard let name = row["index"]?.stringValue else { return nil }
            // Sizes and counts are summed by retention: each must be a count a store can hold.
            func int(_ k: String) throws -> Int64 {
                guard let v = row[k]?.int64Value ?? row[k]?.stringValue.flatMap({ Int64($0) }) else { return 0 }
                guard (0...Self.maxIndexCount).contains(v) else {
                    throw ElasticError(.decoding, "\(path): index \(name): \(k) \(v) is not a count from 0 to 2^53")
                }
                return v
            }
            return IndexInfo(
                name: name, health: row["health"]?.stringValue ?? "", documents: try int("docs.count"),
                storeBytes: try int("store.size"))
        }.sorted { $0.name < $1.name }
    }

    /// Deletes an index; returns false when it did not exist.
    @discardableResult
    public func deleteIndex(_ name: String) async throws -> Bool {
        let path = "/\(Self.escapePath(name))"
        let r = try await send("DELETE", path)
        if r.status == 404 { return false }
        try Self.requireSuccess(r, "DELETE", path)
        return true
    }

    /// Makes recent writes visible to search.
    public func refresh(_ index: String) async throws {
        let path = "/\(Self.escapePath(index))/_refresh"
        let r = try await send("POST", path)
        if r.status == 404 { return }
        try Self.requireSuccess(r, "POST", path)
    }

    // MARK: documents

    /// A stored document with what optimistic concurrency control needs.
    public struct StoredDocument: Sendable {
        public var source: JSONValue
        public var version: Int64
        public var seqNo: Int64
        public var primaryTerm: Int64
    }

    /// `_source` of a document, or nil when missing.
    public func getDocument(index: String, id: String) async throws -> (source: JSONValue, version: Int64)? {
        try await fetchDocument(index: index, id: id).map { ($0.source, $0.version) }
    }

    /// A document with its sequence number and primary term, or nil when missing.
    public func fetchDocument(index: String, id: String) async throws -> StoredDocument? {
        let path = "/\(Self.escapePath(index))/_doc/\(Self.escapePath(id))"
        let r = try await send("GET", path)
        if r.status == 404 { return nil }
        try Self.requireSuccess(r, "GET", path)
        let v = try Self.parse(r, path)
        guard v["found"]?.boolValue == true, let source = v["_source"] else { return nil }
        return StoredDocument(
            source: source, version: v["_version"]?.int64Value ?? 0, seqNo: v["_seq_no"]?.int64Value ?? -1,
            primaryTerm: v["_primary_term"]?.int64Value ?? -1)
    }

    /// Writes a document only if nobody changed it since it was read (`ifSeqNo`/`ifPrimaryTerm`)
    /// or, with both nil, only if it does not exist yet. Returns false on a conflict (409).
    public func putDocumentIfUnchanged(index: String, id: String, source: JSONValue, ifSeqNo: Int64?, ifPrimaryTerm: Int64?) async throws -> Bool {
        let base = "/\(Self.escapePath(index))"
        let path: String
        if let ifSeqNo, let ifPrimaryTerm {
            path = "\(base)/_doc/\(Self.escapePath(id))?if_seq_no=\(ifSeqNo)&if_primary_term=\(ifPrimaryTerm)&refresh=true"
        } else {
            path = "\(base)/_create/\(Self.escapePath(id))?refresh=true"
        }
        let r = try await send("PUT", path, body: JSONWriter.encode(source))
        if r.status == 409 { return false }
        try Self.requireSuccess(r, "PUT", path)
        return true
    }

    /// Creates or replaces a document (`PUT /<index>/_doc/<id>`).
    public func putDocument(index: String, id: String, source: JSONValue) async throws {
        let path = "/\(Self.escapePath(index))/_doc/\(Self.escapePath(id))"
        let r = try await send("PUT", path, body: JSONWriter.encode(source))
        try Self.requireSuccess(r, "PUT", path)
    }

    /// Deletes a document; returns false when it did not exist.
    @discardableResult
    public func deleteDocument(index: String, id: String) async throws -> Bool {
        let path = "/\(Self.escapePath(index))/_doc/\(Self.escapePath(id))"
        let r = try await send("DELETE", path)
        if r.status == 404 { return false }
        try Self.requireSuccess(r, "DELETE", path)
        return true
    }

    // MARK: search

    /// `POST /<index>/_search`, the answer as JSON. A pattern matching no index gives no hits.
    public func searchRaw(index: String, body: JSONValue) async throws -> JSONValue {
        let path = "/\(Self.escapePath(index))/_search?ignore_unavailable=true&allow_no_indices=true"
        return try await json("POST", path, body: body)
    }

    /// `searchRaw` with the hit count and aggregations decoded.
    public func search(index: String, body: JSONValue) async throws -> SearchResponse {
        try SearchResponse(try await searchRaw(index: index, body: body))
    }

    /// Percent-encodes a path segment (index names, ids, template names).
    static func escapePath(_ s: String) -> String {
        var out = ""
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."),
                UInt8(ascii: "*"), UInt8(ascii: ","), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(b))
            default:
                out += "%" + String(b >> 4, radix: 16, uppercase: true) + String(b & 0xf, radix: 16, uppercase: true)
            }
        }
        return out
    }
}

/// One row of `_cat/indices`.
public struct IndexInfo: Sendable, Hashable {
    public var name: String
    public var health: String
    public var documents: Int64
    public var storeBytes: Int64
}
