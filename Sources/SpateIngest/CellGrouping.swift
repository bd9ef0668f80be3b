import SpateModel

/// Groups a chunk's fold entries (bucket ordinal << 48 | cell << 16 | position) by bucket and
/// cell, keeping record order within a cell: what `ViewRollup` needs to touch each cell once.
///
/// Why not `sort()`: a comparison sort of a few hundred random keys mispredicts a branch at
/// nearly every compare, and it was ~6% of the fold. A radix sort over bits 16..<64 is stable,
/// so entries of one cell stay in position order (the order they were appended in), which gives
/// the same order as sorting the whole words.
struct CellGrouping {
    /// The sort's other buffer: as long as the longest chunk sorted so far (≤ `ViewRollup.chunkRecords`).
    private var scratch: [UInt64] = []

    /// Sorts `entries` by bits 16..<64, stably.
    mutating func sort(_ entries: UnsafeMutableBufferPointer<UInt64>) {
        if scratch.count < entries.count { scratch = [UInt64](repeating: 0, count: entries.count) }
        scratch.withUnsafeMutableBufferPointer { RadixSort.sort(entries, scratch: $0, fromBit: 16) }
    }
}
