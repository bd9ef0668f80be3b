public import SpateJSON
public import SpateModel

/// The index templates Spate installs: one per view, one for checkpoints. Versioned in
/// `_meta` and `version`, so a node can tell whether the installed one is current; a change
/// applies to indices created afterwards (the next daily index).
public enum IndexTemplates {
    /// Bump when a template's body changes.
    /// 3: rollup documents carry `partition` (integer); checkpoints name a snapshot, and the
    /// snapshot index exists.
    public static let version: Int64 = 3

    public static func viewTemplate(_ view: ViewDefinition, naming: IndexNaming, shards: Int, replicas: Int) -> JSONValue {
        var properties = JSONObject()
        properties["ts"] = ["type": "date", "format": "epoch_millis"]
        properties["partition"] = ["type": "integer"]
        for d in view.dimensions { properties[d.rawValue] = ["type": "keyword"] }
        // bytes and packets (up + down) are stored too: aggregations rank and plot by them, and
        // scripted sums are neither portable (osmem-server has none) nor cheap.
        for m in DocumentFields.counters + ["rtt_min_us", "rtt_max_us"] {
            properties[m] = ["type": "long"]
        }
        // Exact sums (DocumentFields).
        for m in DocumentFields.split.sorted() {
            properties[DocumentFields.hi(m)] = ["type": "long"]
            properties[DocumentFields.lo(m)] = ["type": "long"]
        }
        // Sketches are stored in _source only: never searched, merged in the node.
        if view.sketches.contains(.subscribers) { properties["subscribers_hll"] = ["type": "binary"] }
        if view.sketches.contains(.rtt) { properties["rtt_sketch"] = ["type": "binary"] }
        return [
            "index_patterns": [.string(naming.pattern(view: view.name))],
            "priority": 200,
            "version": .integer(version),
            "_meta": ["managed_by": "spate", "spate_template_version": .integer(version), "view": .string(view.name)],
            "template": [
                "settings": ["number_of_shards": .number(shards), "number_of_replicas": .number(replicas), "refresh_interval": "1s"],
                "mappings": ["dynamic": "strict", "properties": .object(properties)],
            ],
        ]
    }

    public static func checkpointTemplate(naming: IndexNaming, replicas: Int) -> JSONValue {
        bookkeeping(
            pattern: naming.checkpointIndex, replicas: replicas,
            properties: [
                "group": ["type": "keyword"], "topic": ["type": "keyword"], "partition": ["type": "integer"],
                "resume_offset": ["type": "long"], "resume_max_event_ts": ["type": "long"],
                "horizon_offset": ["type": "long"], "horizon_max_event_ts": ["type": "long"],
                "node": ["type": "keyword"], "written_at": ["type": "date", "format": "epoch_millis"],
                "snapshot_offset": ["type": "long"], "snapshot_max_event_ts": ["type": "long"],
                "snapshot_slot": ["type": "integer"], "snapshot_chunks": ["type": "integer"], "snapshot_bytes": ["type": "long"],
                "snapshot_hash": ["type": "keyword", "index": false, "doc_values": false],
            ])
    }

    /// Snapshots of open buckets: binary pieces, fetched by id, never searched.
    public static func snapshotTemplate(naming: IndexNaming, replicas: Int) -> JSONValue {
        bookkeeping(
            pattern: naming.snapshotIndex, replicas: replicas,
            properties: [
                "group": ["type": "keyword"], "topic": ["type": "keyword"], "partition": ["type": "integer"],
                "slot": ["type": "integer"], "chunk": ["type": "integer"], "offset": ["type": "long"],
                "data": ["type": "binary"],
            ])
    }

    public static func leaseTemplate(naming: IndexNaming, replicas: Int) -> JSONValue {
        bookkeeping(
            pattern: naming.leaseIndex, replicas: replicas,
            properties: [
                "owner": ["type": "keyword"], "expires_at": ["type": "date", "format": "epoch_millis"],
                "acquired_at": ["type": "date", "format": "epoch_millis"], "last_run_at": ["type": "date", "format": "epoch_millis"],
                "last_run": ["type": "keyword", "index": false, "doc_values": false],
            ])
    }

    /// Membership: one document per live node, its state as JSON text (never searched).
    public static func memberTemplate(naming: IndexNaming, replicas: Int) -> JSONValue {
        bookkeeping(
            pattern: naming.memberIndex, replicas: replicas, refreshInterval: "1s",
            properties: [
                "node": ["type": "keyword"], "updated_at": ["type": "date", "format": "epoch_millis"],
                "state": ["type": "keyword", "index": false, "doc_values": false],
            ])
    }

    /// A single-shard index of Spate's own state, strictly mapped.
    static func bookkeeping(pattern: String, replicas: Int, refreshInterval: String? = nil, properties: JSONValue) -> JSONValue {
        var settings = JSONObject([("number_of_shards", 1), ("number_of_replicas", .number(replicas))])
        if let refreshInterval { settings["refresh_interval"] = .string(refreshInterval) }
        return [
            "index_patterns": [.string(pattern)],
            "priority": 200,
            "version": .integer(version),
            "_meta": ["managed_by": "spate", "spate_template_version": .integer(version)],
            "template": ["settings": .object(settings), "mappings": ["dynamic": "strict", "properties": properties]],
        ]
    }
}
