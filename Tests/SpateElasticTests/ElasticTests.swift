import Foundation
import SpateElastic
import SpateJSON
import SpateTestSupport
import Testing

@Suite("Elasticsearch client against osmem-server", .serialized, .timeLimit(.minutes(5)))
struct ElasticTests {
    func client() throws -> ElasticClient {
        try ElasticClient(configuration: ElasticConfiguration(url: try TestServices.shared().elasticURL))
    }

    func template(_ pattern: String) -> JSONValue {
        [
            "index_patterns": [.string(pattern)],
            "template": [
                "settings": ["number_of_shards": 1, "number_of_replicas": 0],
                "mappings": [
                    "dynamic": "strict",
                    "properties": [
                        "app": ["type": "keyword"],
                        "bytes": ["type": "long"],
                        "flows": ["type": "long"],
                        "ts": ["type": "date", "format": "epoch_millis"],
                    ],
                ],
            ],
        ]
    }

    @Test("10,000 documents by id: sums come back exactly; a mapping violation is a typed item error")
    func bulkAndAggregate() async throws {
        let es = try client()
        let name = uniqueName("spate-test-bulk")
        try await withElasticCleanup(es, indices: [name + "*"], templates: [name]) {
        try await es.putIndexTemplate(name: name, body: template(name + "*"))

        var expected: [String: (bytes: Int64, flows: Int64)] = [:]
        var rng = SplitMix64(seed: 11)
        let apps = ["youtube", "dns", "zoom", "ssh", "netflix"]
        var body = BulkBody()
        var total = 0
        for i in 0..<10_000 {
            let app = apps[i % apps.count]
            let bytes = Int64(rng.next() % 10_000_000)
            let flows = Int64(rng.next() % 10)
            expected[app, default: (0, 0)].bytes += bytes
            expected[app, default: (0, 0)].flows += flows
            body.index(index: name, id: "doc-\(i)", source: ["app": .string(app), "bytes": .integer(bytes), "flows": .integer(flows), "ts": .integer(1_700_000_000_000 + Int64(i))])
            if body.count == 2000 {
                let r = try await es.bulk(body)
                #expect(r.failedCount == 0)
                total += r.items.count
                body = BulkBody()
            }
        }
        // One bad document among good ones: "bytes" must be a long.
        body.index(index: name, id: "good-1", source: ["app": "x", "bytes": 1, "flows": 0, "ts": 1])
        body.index(index: name, id: "bad", source: ["app": "x", "bytes": "lots", "flows": 0, "ts": 1])
        body.index(index: name, id: "good-2", source: ["app": "x", "bytes": 2, "flows": 0, "ts": 1])
        let mixed = try await es.bulk(body, refresh: true)
        #expect(mixed.items.map(\.outcome) == [.written, .rejected, .written])
        #expect(mixed.items[1].id == "bad")
        #expect(mixed.items[1].status == 400)
        #expect(mixed.items[1].errorType?.contains("parsing") == true || mixed.items[1].errorType?.contains("mapper") == true)
        #expect(total == 10_000)
        expected["x"] = (3, 0)

        try await es.refresh(name)
        let result = try await es.search(
            index: name,
            body: [
                "size": 0, "track_total_hits": true,
                "aggs": ["by_app": ["terms": ["field": "app", "size": 100], "aggs": ["bytes": ["sum": ["field": "bytes"]], "flows": ["sum": ["field": "flows"]]]]],
            ])
        #expect(result.totalHits == 10_002)
        let buckets = try #require(result.aggregations["by_app"]).buckets
        var got: [String: (Int64, Int64)] = [:]
        for b in buckets {
            got[b.key.stringValue!] = (Int64(b.value("bytes")!), Int64(b.value("flows")!))
        }
        #expect(got.count == expected.count)
        for (app, e) in expected {
            #expect(got[app]?.0 == e.bytes, "bytes of \(app)")
            #expect(got[app]?.1 == e.flows, "flows of \(app)")
        }

        let indices = try await es.catIndices(name + "*")
        #expect(indices.map(\.name) == [name])
        #expect(indices.first?.documents == 10_002)
        #expect(try await es.deleteIndex(name))
        #expect(try await es.catIndices(name + "*").isEmpty)
        #expect(try await es.deleteIndex(name) == false)
        }
    }

    @Test("external_gte versions: an older version is a 409 conflict and leaves the newer document")
    func externalVersions() async throws {
        let es = try client()
        let name = uniqueName("spate-test-version")
        try await withElasticCleanup(es, indices: [name]) {
        var first = BulkBody()
        first.index(index: name, id: "d", version: 10, source: ["v": 10])
        #expect(try await es.bulk(first).items.map(\.outcome) == [.written])
        var same = BulkBody()
        same.index(index: name, id: "d", version: 10, source: ["v": 10])
        #expect(try await es.bulk(same).items.map(\.outcome) == [.written])
        var older = BulkBody()
        older.index(index: name, id: "d", version: 9, source: ["v": 9])
        let r = try await es.bulk(older)
        #expect(r.items.map(\.outcome) == [.versionConflict])
        #expect(r.items.first?.status == 409)
        let doc = try #require(try await es.getDocument(index: name, id: "d"))
        #expect(doc.source["v"]?.int64Value == 10)
        #expect(doc.version == 10)
        }
    }

    @Test("HTTP errors are typed; an unreachable server is a retriable transport error")
    func errors() async throws {
        let es = try client()
        let error = await #expect(throws: ElasticError.self) { _ = try await es.json("GET", "/no-such-index-\(uniqueName("x"))/_doc/1") }
        #expect(error?.status == 404)
        #expect(error?.isRetriable == false)

        let dead = try ElasticClient(configuration: ElasticConfiguration(url: "http://127.0.0.1:1", connectTimeout: .seconds(1)))
        let transport = await #expect(throws: ElasticError.self) { _ = try await dead.health() }
        #expect(transport?.code == .transport)
        #expect(transport?.isRetriable == true)

        #expect(throws: ElasticError.self) { _ = try ElasticClient(configuration: ElasticConfiguration(url: "ftp://x")) }
        #expect(throws: ElasticError.self) {
            _ = try ElasticClient(configuration: ElasticConfiguration(url: "https://x", caFile: "/nonexistent/ca.pem"))
        }
    }

    @Test("_cat/indices with a negative or impossible size is a decoding error naming the index, not a number to sum")
    func hostileCatIndices() async throws {
        let directory = NSTemporaryDirectory() + "/spate-cat-\(uniqueName("x"))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let answer = directory + "/cat.json"
        let proxy = try CountingProxy(upstream: try TestServices.shared().elasticURL, directory: directory, catIndices: answer)
        defer { proxy.stop() }
        let es = try ElasticClient(configuration: ElasticConfiguration(url: proxy.url))
        for (field, value) in [("store.size", "-9223372036854775808"), ("store.size", "9223372036854775807"), ("docs.count", "-1")] {
            let row = #"[{"index":"spate-app_1m-2026.11.20","store.size":"1000","docs.count":"5"},{"index":"spate-x","\#(field)":"\#(value)"}]"#
            try row.write(toFile: answer, atomically: true, encoding: .utf8)
            let error = await #expect(throws: ElasticError.self) { _ = try await es.catIndices("spate-*") }
            #expect(error?.code == .decoding)
            #expect(error.map { "\($0)".contains("spate-x") && "\($0)".contains(field) } == true, "\(String(describing: error))")
        }
        try #"[{"index":"spate-app_1m-2026.11.20","store.size":"9007199254740992","docs.count":"5"}]"#.write(toFile: answer, atomically: true, encoding: .utf8)
        let fine = try await es.catIndices("spate-*")
        #expect(fine.map(\.storeBytes) == [9_007_199_254_740_992])
    }

    @Test("a store that never answers: requests past the queue's bound fail at once, retriable, and name themselves")
    func queueBound() async throws {
        let hole = try BlackHoleServer()
        defer { hole.close() }
        let es = try ElasticClient(
            configuration: ElasticConfiguration(url: "http://127.0.0.1:\(hole.port)", requestTimeout: .seconds(120), maxConcurrentRequests: 1))
        // One request hangs on its thread, 1,024 wait; the rest are refused without waiting.
        let refusedFirst = await withTaskGroup(of: ElasticError?.self) { group -> [ElasticError?] in
            for k in 0..<1100 {
                group.addTask {
                    do {
                        _ = try await es.send("GET", "/request-\(k)")
                        return nil
                    } catch {
                        return error as? ElasticError
                    }
                }
            }
            var first: [ElasticError?] = []
            for await r in group {
                first.append(r)
                if first.count == 50 { break }
            }
            es.shutdown()  // fails the waiting ones and aborts the hanging one
            for await _ in group {}
            return first
        }
        #expect(refusedFirst.count == 50)
        for e in refusedFirst {
            #expect(e?.code == .transport)
            #expect(e?.isRetriable == true)
            #expect(e.map { $0.message.contains("1024 requests are already waiting for the store (GET /request-") } == true, "\(String(describing: e))")
        }
    }
}
