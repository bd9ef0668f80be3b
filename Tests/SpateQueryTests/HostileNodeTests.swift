import Foundation
import Logging
import NIOCore
import NIOPosix
import SpateModel
import SpateServer
import SpateTestSupport
import SpateWire
import Testing

/// A node's answer is input from outside to the CLI: numbers no real node sends must print
/// clamped and exit 0, never trap `spate`. The node here is the real protocol stack
/// (`ConnectionHandler`) with a call handler that answers extremes.
@Suite("spate against a node whose answers carry extreme numbers", .timeLimit(.minutes(2)))
struct HostileNodeTests {
    struct ExtremeAnswers: CallHandler {
        func handle(method: SpateWire.Method, request: [UInt8], emit: @escaping @Sendable ([UInt8]) -> Void) async throws {
            let now = UInt64(Date().timeIntervalSince1970 * 1000)
            switch method {
            case .status:
                let lagging = [0, 1].map { PartitionStatus(partition: $0, nextOffset: 1, committedOffset: 1, lag: .max) }
                let node = NodeStatus(
                    nodeID: "n1", queryAddress: "127.0.0.1:1", partitions: lagging, recordsPerSecond: .infinity, documentsPerSecond: 1e300)
                emit(WireMessages.encode(
                    ClusterStatus(nodeID: "n1", version: "x", node: node, cluster: [node], storeHealth: "green", topic: "t", group: "g", warnings: [])))
            case .query:
                let q = try WireMessages.decodeQuery(request)
                var r = QueryResult(view: "app_1m", startMs: now - 3_600_000, endMs: now, stepMs: 60_000, computedAtMs: .max)
                switch q.kind {
                case .top:
                    // Each row fits 2^64; their sum does not.
                    r.top = [TopRow(value: "a", metric: .max, totals: MetricTotals()), TopRow(value: "b", metric: .max - 1, totals: MetricTotals())]
                case .series:
                    let points = (0..<600).map { TimeSeries.Point(tsMs: now - 3_600_000 + UInt64($0) * 6000, value: .max - UInt64($0)) }
                    r.series = [TimeSeries(label: "", points: points)]
                case .distinctSubscribers:
                    r.distinct = .infinity
                default:
                    r.totals = MetricTotals()
                }
                emit(WireMessages.encode(r))
            default:
                throw RPCError(.unimplemented, "\(method.rawValue) is not answered here")
            }
        }
    }

    @Test("status with infinite rates and lags summing past 2^63, top rows summing past 2^64, a series of 600 points near 2^64, an infinite distinct count: exit 0")
    func extremes() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let limits = ServerLimits.defaults
        let channel = try await ServerBootstrap(group: group)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    _ = try ConnectionHandler.addHandlers(
                        to: channel.pipeline.syncOperations, limits: limits, handler: ExtremeAnswers(), slots: nil, logger: Logger(label: "hostile-node"))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let server = ["--server", "127.0.0.1:\(channel.localAddress?.port ?? 0)"]
        for args in [["status"], ["top", "application"], ["series", "--range", "1h"], ["distinct"], ["status", "--format", "csv"]] {
            let (status, output) = try runSpate(args + server, limit: .seconds(30))
            #expect(status == 0, "spate \(args.joined(separator: " ")): \(output)")
            if args == ["top", "application"] { #expect(output.contains("100.0%") || output.contains("50.0%"), "\(output)") }
            if args == ["distinct"] { #expect(output.contains("distinct subscribers: 18447P"), "\(output)") }
            if args == ["status", "--format", "csv"] { #expect(output.contains(",18446744073709551614,18446744073709551615,"), "\(output)") }
        }
        try await channel.close()
        try await group.shutdownGracefully()
    }
}
