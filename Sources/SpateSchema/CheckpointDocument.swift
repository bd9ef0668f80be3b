public import SpateIngest
public import SpateJSON

/// The checkpoint document of one partition in `<prefix>-checkpoints`: its shape when written,
/// and a reader that validates what the store returns (a store answer is hostile until
/// checked: a negative offset or an event time beyond any record's is an error, not a trap).
public enum CheckpointDocument {
    /// Errors reading a stored checkpoint.
    public struct DecodingError: Error, Sendable, CustomStringConvertible {
        public let message: String
        public var description: String { message }
    }

    /// The `_source` of a checkpoint.
    public static func source(
        group: String, topic: String, partition: Int32, resume: ResumeState, node: String, writtenAtMs: UInt64
    ) -> JSONValue {
        var doc = JSONObject([
            ("group", .string(group)), ("topic", .string(topic)), ("partition", .number(partition)),
            ("resume_offset", .integer(resume.offset)), ("resume_max_event_ts", .integer(Int64(clamping: resume.maxEventTs))),
            ("horizon_offset", .integer(resume.horizonOffset)),
            ("horizon_max_event_ts", .integer(Int64(clamping: resume.horizonMaxEventTs))), ("node", .string(node)),
            ("written_at", .integer(Int64(clamping: writtenAtMs))),
        ])
        if let s = resume.snapshot {
            doc["snapshot_offset"] = .integer(s.offset)
            doc["snapshot_max_event_ts"] = .integer(Int64(clamping: s.maxEventTs))
            doc["snapshot_slot"] = .integer(Int64(s.slot))
            doc["snapshot_chunks"] = .integer(Int64(s.chunks))
            doc["snapshot_bytes"] = .integer(Int64(s.bytes))
            // The hash as text: a `long` field would read back through a Double.
            doc["snapshot_hash"] = .string(String(s.hash, radix: 16))
        }
        return .object(doc)
    }

    /// The resume state a stored `_source` holds.
    /// - Throws: `DecodingError` when a field is missing, negative, the largest Int64, or out of
    ///   order (resume after horizon).
    public static func resume(from source: JSONValue) throws -> ResumeState {
        func field(_ name: String) throws -> Int64 {
            guard let v = source[name]?.int64Value else {
                throw DecodingError(message: "checkpoint field \(name) is missing or not an integer")
            }
            guard v >= 0 else { throw DecodingError(message: "checkpoint field \(name) is negative (\(v))") }
            // Offsets are versions plus one (`horizon_offset + 1` is the checkpoint's own): the
            // largest Int64 is no offset a partition reaches, and would overflow that.
            guard v < Int64.max else { throw DecodingError(message: "checkpoint field \(name) is out of range (\(v))") }
            return v
        }
        let offset = try field("resume_offset")
        let maxTs = try field("resume_max_event_ts")
        let horizon = try field("horizon_offset")
        let horizonTs = try field("horizon_max_event_ts")
        guard offset <= horizon, maxTs <= horizonTs else {
            throw DecodingError(message: "checkpoint resume point (\(offset), \(maxTs)) lies after its horizon (\(horizon), \(horizonTs))")
        }
        var resume = ResumeState(offset: offset, maxEventTs: UInt64(maxTs), horizonOffset: horizon, horizonMaxEventTs: UInt64(horizonTs))
        guard source["snapshot_offset"] != nil else { return resume }
        let snapshotOffset = try field("snapshot_offset")
        let snapshotTs = try field("snapshot_max_event_ts")
        let slot = try field("snapshot_slot")
        let chunks = try field("snapshot_chunks")
        let bytes = try field("snapshot_bytes")
        guard let hashText = source["snapshot_hash"]?.stringValue, let hash = UInt64(hashText, radix: 16) else {
            throw DecodingError(message: "checkpoint field snapshot_hash is missing or not hexadecimal")
        }
        guard snapshotOffset <= horizon, snapshotTs <= horizonTs, slot <= 1, chunks >= 1, chunks <= SnapshotDocument.maxChunks,
            bytes <= Int64(SnapshotDocument.maxChunks) * Int64(SnapshotDocument.maxChunkBytes)
        else {
            throw DecodingError(message: "checkpoint snapshot reference (offset \(snapshotOffset), slot \(slot), \(chunks) chunks, \(bytes) bytes) is out of range")
        }
        resume.snapshot = SnapshotReference(
            offset: snapshotOffset, maxEventTs: UInt64(snapshotTs), slot: Int(slot), chunks: Int(chunks), bytes: Int(bytes), hash: hash)
        return resume
    }
}
