public import SpateJSON

/// A bulk request body under construction: NDJSON action/source pairs appended straight into
/// one byte buffer.
public struct BulkBody: Sendable {
    public private(set) var bytes: [UInt8] = []
    /// Where each item (action line + source line) starts in `bytes`; items end where the next
    /// begins. Lets a writer resend only the items that failed.
    public private(set) var itemStarts: [Int] = []
    public var count: Int { itemStarts.count }

    public init(reservingBytes: Int = 0) { bytes.reserveCapacity(reservingBytes) }

    /// Appends an `index` action. `version` with `version_type=external_gte` makes a write
    /// with a lower version than the stored one fail with 409 (the stored document stays).
    public mutating func index(index: String, id: String, version: Int64? = nil, source: JSONValue) {
        appendAction(index: index, id: id, version: version)
        JSONWriter.append(source, to: &bytes)
        bytes.append(0x0A)
    }

    /// `index` with the source already encoded as one JSON line (no newline).
    public mutating func index(index: String, id: String, version: Int64? = nil, encodedSource: [UInt8]) {
        appendAction(index: index, id: id, version: version)
        bytes.append(contentsOf: encodedSource)
        bytes.append(0x0A)
    }

    /// The bytes of item `i` (its action and source lines).
    public func item(_ i: Int) -> ArraySlice<UInt8> {
        bytes[itemStarts[i]..<(i + 1 < itemStarts.count ? itemStarts[i + 1] : bytes.count)]
    }

    /// The source line of item `i` (without newline).
    public func itemSource(_ i: Int) -> ArraySlice<UInt8> {
        let slice = item(i)
        let afterAction = slice.firstIndex(of: 0x0A)! + 1
        return slice[afterAction..<(slice.endIndex - 1)]
    }

    /// A body with only the items at `indices`, in that order.
    public func subset(_ indices: [Int]) -> BulkBody {
        var out = BulkBody()
        for i in indices {
            out.itemStarts.append(out.bytes.count)
            out.bytes.append(contentsOf: item(i))
        }
        return out
    }

    /// Appends every item of `other`.
    public mutating func append(contentsOf other: BulkBody) {
        let base = bytes.count
        itemStarts.append(contentsOf: other.itemStarts.map { $0 + base })
        bytes.append(contentsOf: other.bytes)
    }

    private mutating func appendAction(index: String, id: String, version: Int64?) {
        itemStarts.append(bytes.count)
        bytes.append(contentsOf: #"{"index":{"_index":"#.utf8)
        JSONWriter.appendString(index, to: &bytes)
        bytes.append(contentsOf: #","_id":"#.utf8)
        JSONWriter.appendString(id, to: &bytes)
        if let version {
            bytes.append(contentsOf: #","version":"#.utf8)
            JSONWriter.appendInteger(version, to: &bytes)
            bytes.append(contentsOf: #","version_type":"external_gte""#.utf8)
        }
        bytes.append(contentsOf: "}}\n".utf8)
    }
}

/// The result of one bulk item, in request order.
public struct BulkItemResult: Sendable, Hashable {
    /// What happened to the item.
    public enum Outcome: Sendable, Hashable {
        /// Written (created or updated).
        case written
        /// 409: the stored document already has this or a newer version. For Spate's
        /// versioned rollups that is success — the store holds at least this state.
        case versionConflict
        /// 429 or 5xx for this item: retry it.
        case retriable
        /// A permanent failure (mapping error, bad document): retrying will not help.
        case rejected
    }

    public var index: String
    public var id: String
    public var status: Int
    public var outcome: Outcome
    /// `error.type`, e.g. `mapper_parsing_exception`, for failed items.
    public var errorType: String?
    public var errorReason: String?
}

/// A whole bulk answer.
public struct BulkResponse: Sendable {
    public var items: [BulkItemResult]
    public var tookMs: Int64

    public var failedCount: Int { items.count { $0.outcome == .retriable || $0.outcome == .rejected } }
}

extension ElasticClient {
    /// Sends a bulk request. Transport errors, timeouts and whole-request 429/5xx throw
    /// (`isRetriable`); per-item failures come back typed in the response.
    /// - Parameter refresh: wait until the writes are searchable.
    public func bulk(_ body: BulkBody, refresh: Bool = false) async throws -> BulkResponse {
        let path = "/_bulk" + (refresh ? "?refresh=wait_for" : "")
        let r = try await send("POST", path, body: body.bytes, contentType: "application/x-ndjson")
        try Self.requireSuccess(r, "POST", path)
        let v = try Self.parse(r, path)
        guard let items = v["items"]?.arrayValue else { throw ElasticError(.decoding, "bulk answer without items") }
        guard items.count == body.count else {
            throw ElasticError(.decoding, "bulk answer has \(items.count) items for \(body.count) sent")
        }
        let results = try items.map { item -> BulkItemResult in
            guard let o = item.objectValue, let first = o.first(where: { _ in true }) else {
                throw ElasticError(.decoding, "bulk item is not an object")
            }
            let a = first.value
            let status = Int(a["status"]?.int64Value ?? 0)
            let error = a["error"]
            let outcome: BulkItemResult.Outcome
            switch status {
            case 200..<300: outcome = .written
            case 409: outcome = .versionConflict
            case 429, 500...: outcome = .retriable
            default: outcome = .rejected
            }
            return BulkItemResult(
                index: a["_index"]?.stringValue ?? "", id: a["_id"]?.stringValue ?? "", status: status,
                outcome: outcome, errorType: error?["type"]?.stringValue, errorReason: error?["reason"]?.stringValue)
        }
        return BulkResponse(items: results, tookMs: v["took"]?.int64Value ?? 0)
    }
}
