import ArgumentParser
import Foundation
import SpateClient
import SpateModel

struct Storage: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Store usage per view, retention, and the days that fit under the size cap.")
    @OptionGroup var connection: ConnectionOptions

    func run() async throws {
        let timeout = connection.deadline
        let s = try await withClient(connection) { try await $0.storage(timeout: timeout) }
        switch connection.format {
        case .json: print(String(decoding: try JSONEncoder.spate.encode(s), as: UTF8.self))
        case .csv:
            print(Format.csv(["view", "indices", "documents", "bytes", "bytes_per_record", "oldest_day", "newest_day", "retention_days"],
                s.views.map { [$0.view, String($0.indices), String($0.documents), String($0.bytes), String(format: "%.3f", $0.bytesPerRecord), $0.oldestDay, $0.newestDay, String($0.retentionDays)] }))
        case .table:
            print(Format.table(
                ["view", "indices", "documents", "size", "bytes/record", "oldest", "newest", "kept"],
                s.views.map { [$0.view, String($0.indices), Format.count($0.documents), Format.bytes($0.bytes), String(format: "%.2f", $0.bytesPerRecord), $0.oldestDay, $0.newestDay, "\($0.retentionDays)d"] }))
            print("total \(Format.bytes(s.totalBytes)) of a \(Format.bytes(s.maxTotalBytes)) cap; growing \(Format.bytes(s.bytesPerDay))/day"
                + (s.projectedDays > 0 ? String(format: " → %.1f days fit", s.projectedDays) : ""))
            print(Format.dim("retention run by \(s.retentionOwner.isEmpty ? "nobody yet" : s.retentionOwner)" + (s.lastRetentionMs > 0 ? " at \(Format.time(ms: s.lastRetentionMs))" : "")))
            for w in s.warnings { print(Format.paint("warning: \(w)", "33")) }
        }
    }
}
