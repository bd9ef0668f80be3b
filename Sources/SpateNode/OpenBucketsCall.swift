import SpateIngest
import SpateJSON
import SpateModel
import SpateWire

/// The messages of the node-to-node `OpenBuckets` call (docs/PROTOCOL.md): a JSON request
/// naming a view, range, step, filters, grouping, sketch and per-partition lower bounds; a
/// JSON answer with, per partition the node owns, its buckets held in memory per slot. JSON
/// rather than protobuf: only nodes of the same version speak it, it carries sketches as
/// base64, and it keeps the public protocol's messages unchanged. Everything decoded from a
/// peer is validated before it is used: sizes, counts, ranges, sketch bytes.
enum OpenBucketsCall {
    /// Partitions, filters and slots one request or answer may name.
    static let maxPartitions = 10_000
    static let maxSlots = 10_000
    static let maxGroupsPerSlot = 100_000

    static func encode(_ r: OpenBucketRequest) -> [UInt8] {
        var o = JSONObject()
        o["view"] = .string(r.view)
        o["start_ms"] = .string(String(r.startMs))
        o["end_ms"] = .string(String(r.endMs))
        o["step_ms"] = .string(String(r.stepMs))
        o["filters"] = .array(r.filters.map { ["dimension": .string($0.dimension.rawValue), "op": .string($0.op.rawValue), "values": .array($0.values.map(JSONValue.string))] })
        if let g = r.grouped { o["grouped"] = .string(g.rawValue) }
        if let s = r.sketch { o["sketch"] = .string(s.rawValue) }
        o["from"] = .array(r.fromMs.sorted { $0.key < $1.key }.map { [.number($0.key), .string(String($0.value))] })
        return JSONWriter.encode(.object(o))
    }

    static func decodeRequest(_ bytes: [UInt8]) throws -> OpenBucketRequest {
        let v: JSONValue
        do { v = try JSONParser.parse(bytes) } catch { throw RPCError(.invalidArgument, "OpenBuckets: \(error)") }
        func ms(_ key: String) throws -> UInt64 {
            guard let t = v[key]?.stringValue, let x = UInt64(t), x <= WireMessages.maxTimeMs else { throw bad("\(key) is missing or out of range") }
            return x
        }
        guard let view = v["view"]?.stringValue, !view.isEmpty, view.utf8.count <= 64 else { throw bad("view") }
        let start = try ms("start_ms"), end = try ms("end_ms"), step = try ms("step_ms")
        guard start < end, step > 0, (end - start) / step <= UInt64(maxSlots) else { throw bad("range or step") }
        let rawFilters = v["filters"]?.arrayValue ?? []
        guard rawFilters.count <= 32 else { throw bad("more than 32 filters") }
        var valueCount = 0
        let filters = try rawFilters.map { f -> QueryFilter in
            guard let d = f["dimension"]?.stringValue.flatMap(Dimension.init(rawValue:)), let op = f["op"]?.stringValue.flatMap(QueryFilter.Op.init(rawValue:)),
                let values = f["values"]?.arrayValue?.compactMap(\.stringValue), !values.isEmpty
            else { throw bad("filter") }
            valueCount += values.count
            guard valueCount <= 1024 else { throw bad("more than 1024 filter values") }
            return QueryFilter(dimension: d, op: op, values: values)
        }
        let grouped = try v["grouped"].map { g -> Dimension in
            guard let d = g.stringValue.flatMap(Dimension.init(rawValue:)) else { throw bad("grouped") }
            return d
        }
        let sketch = try v["sketch"].map { s -> SketchKind in
            guard let k = s.stringValue.flatMap(SketchKind.init(rawValue:)) else { throw bad("sketch") }
            return k
        }
        let rawFrom = v["from"]?.arrayValue ?? []
        guard rawFrom.count <= maxPartitions else { throw bad("too many partitions") }
        var from: [Int32: UInt64] = [:]
        for pair in rawFrom {
            guard let p = pair[0]?.int64Value, (0...Int64(Int32.max)).contains(p), let t = pair[1]?.stringValue, let x = UInt64(t),
                x <= WireMessages.maxTimeMs
            else { throw bad("from") }
            from[Int32(p)] = x
        }
        return OpenBucketRequest(view: view, startMs: start, endMs: end, stepMs: step, filters: filters, grouped: grouped, sketch: sketch, fromMs: from)
    }

    static func encode(_ answers: OpenBucketMailbox.Answers) -> [UInt8] {
        var parts: [JSONValue] = []
        var declined: [JSONValue] = []
        for (p, r) in answers.sorted(by: { $0.key < $1.key }) {
            switch r {
            case .failure(let why): declined.append([.number(p), .string("\(why)")])
            case .success(let part):
                let slots: [JSONValue] = part.slots.sorted { $0.key < $1.key }.map { start, slot in
                    var s = JSONObject()
                    s["start"] = .string(String(start))
                    s["groups"] = .array(slot.groups.sorted { $0.key < $1.key }.map { k, t in
                        [.string(k), .string("\(t.records) \(t.flows) \(t.bytesUp) \(t.bytesDown) \(t.packetsUp) \(t.packetsDown) \(t.rttCount) \(t.rttSumMicros)")]
                    })
                    if let h = slot.subscribers { s["hll"] = .string(Base64.encode(h.serialized())) }
                    if let q = slot.rtt { s["rtt"] = .string(Base64.encode(q.serialized())) }
                    return .object(s)
                }
                parts.append(["partition": .number(p), "held_from": .string(String(part.heldFromMs)), "cells": .number(part.cells), "slots": .array(slots)])
            }
        }
        return JSONWriter.encode(["parts": .array(parts), "declined": .array(declined)])
    }

    /// The parts of an answer; partitions a peer declined are simply absent.
    static func decodeAnswer(_ bytes: [UInt8]) throws -> [OpenBucketPart] {
        let v: JSONValue
        do { v = try JSONParser.parse(bytes) } catch { throw RPCError(.internal, "OpenBuckets answer: \(error)") }
        let raw = v["parts"]?.arrayValue ?? []
        guard raw.count <= maxPartitions else { throw badAnswer("too many partitions") }
        return try raw.map { p -> OpenBucketPart in
            guard let partition = p["partition"]?.int64Value, (0...Int64(Int32.max)).contains(partition),
                let held = p["held_from"]?.stringValue.flatMap({ UInt64($0) }), let rawSlots = p["slots"]?.arrayValue, rawSlots.count <= maxSlots
            else { throw badAnswer("part") }
            var slots: [UInt64: OpenBucketSlot] = [:]
            for s in rawSlots {
                guard let start = s["start"]?.stringValue.flatMap({ UInt64($0) }), let groups = s["groups"]?.arrayValue, groups.count <= maxGroupsPerSlot
                else { throw badAnswer("slot") }
                var slot = OpenBucketSlot()
                for g in groups {
                    guard let key = g[0]?.stringValue, let text = g[1]?.stringValue else { throw badAnswer("group") }
                    let n = text.split(separator: " ").compactMap { UInt64($0) }
                    guard n.count == 8 else { throw badAnswer("group sums") }
                    var t = MetricTotals()
                    (t.records, t.flows, t.bytesUp, t.bytesDown) = (n[0], n[1], n[2], n[3])
                    (t.packetsUp, t.packetsDown, t.rttCount, t.rttSumMicros) = (n[4], n[5], n[6], n[7])
                    slot.groups[key] = t
                }
                if let h = s["hll"]?.stringValue {
                    guard let bytes = Base64.decode(h), let sketch = HyperLogLog(serialized: bytes) else { throw badAnswer("hll") }
                    slot.subscribers = sketch
                }
                if let q = s["rtt"]?.stringValue {
                    guard let bytes = Base64.decode(q), let sketch = QuantileSketch(rttSerialized: bytes) else { throw badAnswer("rtt") }
                    slot.rtt = sketch
                }
                slots[start] = slot
            }
            return OpenBucketPart(partition: Int32(partition), heldFromMs: held, slots: slots, cells: Int(clamping: p["cells"]?.int64Value ?? 0))
        }
    }

    private static func bad(_ what: String) -> RPCError { RPCError(.invalidArgument, "OpenBuckets: bad \(what)") }
    private static func badAnswer(_ what: String) -> RPCError { RPCError(.internal, "OpenBuckets answer: bad \(what)") }
}
