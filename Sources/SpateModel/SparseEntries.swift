/// A sparse HyperLogLog's entries: `index << 6 | rho` words (rho is never 0), sorted and one per
/// index with the largest rho, plus a bounded buffer of recent adds not merged in yet (HLL++).
///
/// Why sorted with a buffer rather than a hash set: a set of up to 16,384 entries is a table of
/// up to 128 KB in which every add is a random access, nearly always a cache miss in a node
/// holding thousands of sketches. Here an add appends to the buffer, and a full buffer is
/// sorted (radix) and merged into the sorted entries in one sequential pass. The buffer holds
/// at most a quarter of the sorted entries (at least 64), so the merge costs a few words per
/// add and the memory stays below the hash set's. Readers see the entries only merged:
/// `HyperLogLog` merges the buffer (into a copy when reading) before any estimate, bytes or
/// comparison.
struct SparseEntries: Sendable, Hashable {
    /// Sorted by index, one word per index.
    private(set) var sorted: [UInt32] = []
    /// Recent adds, in arrival order; may repeat each other and `sorted`.
    private var buffered: [UInt32] = []
    /// `bufferLimit(sorted: sorted.count)`, kept here: an add then touches the buffer only, not
    /// the header of `sorted` (a cache miss of its own in a large sketch).
    private var limit = Self.bufferLimit(sorted: 0)

    /// Distinct indices among the merged entries (the buffer is not counted).
    var count: Int { sorted.count }
    var hasBuffered: Bool { !buffered.isEmpty }
    /// Words of memory held.
    var capacity: Int { sorted.capacity + buffered.capacity }

    /// Adds stay buffered until this many, for `sorted` entries merged.
    @inline(__always)
    static func bufferLimit(sorted: Int) -> Int { max(64, sorted >> 2) }

    /// Buffers one word; true when the buffer is full and must be merged (`mergeBuffered`).
    @inline(__always)
    mutating func buffer(_ word: UInt32) -> Bool {
        buffered.append(word)
        return buffered.count >= limit
    }

    /// Whether the buffer is full and must be merged (`mergeBuffered`).
    var isFull: Bool { buffered.count >= limit }

    /// Buffers words from the front of `words` until the buffer is full or they run out, and
    /// returns how many it took: as many `buffer(_:)` calls as that, stopping at the first
    /// that reported the buffer full.
    mutating func buffer(_ words: UnsafeBufferPointer<UInt32>) -> Int {
        let taken = min(words.count, max(1, limit - buffered.count))
        buffered.append(contentsOf: UnsafeBufferPointer(rebasing: words[..<taken]))
        return taken
    }

    /// Appends a word not below the last one (deserialization): a word of the last index
    /// replaces it (same index, rho at least as large).
    mutating func appendAscending(_ word: UInt32) {
        if let last = sorted.last, last >> 6 == word >> 6 {
            sorted[sorted.count - 1] = word
        } else {
            sorted.append(word)
        }
        limit = Self.bufferLimit(sorted: sorted.count)
    }

    /// Merges the buffer into the sorted entries, keeping the largest rho per index.
    mutating func mergeBuffered() {
        guard !buffered.isEmpty else { return }
        Self.sortWords(&buffered)
        Self.union(into: &sorted, buffered)
        buffered.removeAll(keepingCapacity: true)
        limit = Self.bufferLimit(sorted: sorted.count)
    }

    /// Adds the merged entries of `other` (which has nothing buffered).
    mutating func merge(_ other: SparseEntries) {
        mergeBuffered()
        Self.union(into: &sorted, other.sorted)
        limit = Self.bufferLimit(sorted: sorted.count)
    }

    /// Calls `body` with each merged entry's index and rho, in index order.
    func forEach(_ body: (UInt32, UInt8) -> Void) {
        for e in sorted { body(e >> 6, UInt8(e & 0x3f)) }
    }

    /// Makes `a` (sorted, one word per index) the union of `a` and sorted `b` (which may repeat
    /// an index, rho ascending): one word per index, the largest rho. In place, from the back,
    /// so that a large sketch's entries are not reallocated (and their pages not faulted in
    /// again) at every merge.
    private static func union(into a: inout [UInt32], _ b: [UInt32]) {
        guard !b.isEmpty else { return }
        let n = a.count
        a.append(contentsOf: repeatElement(0, count: b.count))
        let total = a.count
        let unused = a.withUnsafeMutableBufferPointer { a in
            b.withUnsafeBufferPointer { b in
                var i = n - 1
                var j = b.count - 1
                var o = total - 1
                while j >= 0 {
                    // The last word of this index in `b` is its largest rho.
                    let word = b[j]
                    let index = word >> 6
                    j -= 1
                    while j >= 0 && b[j] >> 6 == index { j -= 1 }
                    while i >= 0 && a[i] >> 6 > index {
                        a[o] = a[i]
                        o -= 1
                        i -= 1
                    }
                    if i >= 0 && a[i] >> 6 == index {
                        a[o] = max(a[i], word)
                        i -= 1
                    } else {
                        a[o] = word
                    }
                    o -= 1
                }
                // a[0...i] stayed in place, the merged words are a[(o + 1)...]: close the gap.
                let gap = o - i
                if gap > 0 {
                    let base = a.baseAddress!
                    (base + i + 1).update(from: base + o + 1, count: total - o - 1)
                }
                return gap
            }
        }
        a.removeLast(unused)
    }

    /// Sorts words ascending: insertion sort when short, else `RadixSort`.
    private static func sortWords(_ words: inout [UInt32]) {
        let n = words.count
        words.withUnsafeMutableBufferPointer { w in
            if n > 64 {
                withUnsafeTemporaryAllocation(of: UInt32.self, capacity: n) { RadixSort.sort(w, scratch: $0) }
                return
            }
            for i in 1..<max(1, n) {
                let x = w[i]
                var k = i
                while k > 0 && w[k - 1] > x {
                    w[k] = w[k - 1]
                    k -= 1
                }
                w[k] = x
            }
        }
    }

    static func == (a: SparseEntries, b: SparseEntries) -> Bool {
        var (x, y) = (a, b)
        x.mergeBuffered()
        y.mergeBuffered()
        return x.sorted == y.sorted
    }

    func hash(into hasher: inout Hasher) {
        var x = self
        x.mergeBuffered()
        hasher.combine(x.sorted)
    }
}
