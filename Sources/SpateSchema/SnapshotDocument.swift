public import SpateElastic
public import SpateIngest
public import SpateJSON
import SpateModel

/// A partition's open-bucket snapshot in the store: its bytes cut into pieces, each one
/// document `<group>|<topic>|<partition>|<slot>|<chunk>` in `<prefix>-snapshots`, written with
/// the flush's documents and before its checkpoint, which names the snapshot
/// (`SnapshotReference`). Pieces carry the snapshot's offset, so a piece of another snapshot is
/// recognised; the checkpoint's byte count and hash check the whole.
public enum SnapshotDocument {
    /// At most this many pieces per snapshot, of at most `maxChunkBytes` each (4 GiB in all —
    /// far beyond any open state the memory bounds allow; a reference beyond it is corrupt).
    public static let maxChunks = 4096
    public static let maxChunkBytes = 1 << 20

    public static func id(group: String, topic: String, partition: Int32, slot: Int, chunk: Int) -> String {
        "\(group)|\(topic)|\(partition)|\(slot)|\(chunk)"
    }

    /// Raw bytes per piece so that a piece (base64, 4/3 larger, plus its envelope) fills at
    /// most half of a bulk request: a bulk is never too large because of one.
    public static func chunkBytes(bulkMaxBytes: Int) -> Int {
        max(1024, min(maxChunkBytes, (bulkMaxBytes / 2 - 1024) / 4 * 3))
    }

    /// Appends the pieces of `bytes` to `body` and returns the reference the checkpoint keeps.
    /// Versioned by the snapshot's offset: a stale writer's older snapshot cannot replace it.
    public static func append(
        _ bytes: [UInt8], to body: inout BulkBody, index: String, group: String, topic: String, partition: Int32,
        offset: Int64, maxEventTs: UInt64, slot: Int, chunkBytes: Int
    ) -> SnapshotReference {
        let size = max(1, chunkBytes)
        let chunks = max(1, (bytes.count + size - 1) / size)
        for k in 0..<chunks {
            let piece = Array(bytes[min(bytes.count, k * size)..<min(bytes.count, (k + 1) * size)])
            let source: JSONValue = [
                "group": .string(group), "topic": .string(topic), "partition": .number(partition), "slot": .integer(Int64(slot)),
                "chunk": .integer(Int64(k)), "offset": .integer(offset), "data": .string(Base64.encode(piece)),
            ]
            body.index(
                index: index, id: id(group: group, topic: topic, partition: partition, slot: slot, chunk: k), version: offset + 1,
                source: source)
        }
        return SnapshotReference(
            offset: offset, maxEventTs: maxEventTs, slot: slot, chunks: chunks, bytes: bytes.count,
            hash: SnapshotReference.hash(of: bytes))
    }

    /// The bytes of piece `chunk` of the snapshot `reference` names, from a stored `_source`.
    /// - Throws: `SnapshotError` when the piece belongs to another snapshot or is malformed.
    public static func piece(from source: JSONValue, reference: SnapshotReference, partition: Int32, chunk: Int) throws -> [UInt8] {
        guard source["partition"]?.int64Value == Int64(partition), source["slot"]?.int64Value == Int64(reference.slot),
            source["chunk"]?.int64Value == Int64(chunk)
        else { throw SnapshotError("snapshot piece \(chunk) is not of partition \(partition), slot \(reference.slot)") }
        guard source["offset"]?.int64Value == reference.offset else {
            throw SnapshotError("snapshot piece \(chunk) is of offset \(source["offset"]?.int64Value ?? -1), the checkpoint names \(reference.offset)")
        }
        guard let text = source["data"]?.stringValue, text.utf8.count <= (maxChunkBytes / 3 + 1) * 4, let bytes = Base64.decode(text),
            !bytes.isEmpty || reference.bytes == 0
        else { throw SnapshotError("snapshot piece \(chunk) has no readable data") }
        return bytes
    }
}
