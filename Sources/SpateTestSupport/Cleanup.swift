public import SpateElastic

/// Runs `body`, then deletes the indices and templates named — whether `body` succeeded or not.
public func withElasticCleanup<T>(
    _ es: ElasticClient, indices: [String], templates: [String] = [], _ body: () async throws -> T
) async throws -> T {
    func cleanup() async {
        for i in indices { _ = try? await es.deleteIndex(i) }
        for t in templates { _ = try? await es.send("DELETE", "/_index_template/" + t) }
    }
    do {
        let result = try await body()
        await cleanup()
        return result
    } catch {
        await cleanup()
        throw error
    }
}
