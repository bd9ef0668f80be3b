import Foundation
import SpateIngest
import Synchronization

/// Questions about open buckets for one ingest worker (the live tier, docs/DESIGN.md "Live
/// dashboards"). A partition's rollup is touched only by its worker's thread, so a question
/// waits here until that thread drains the mailbox between messages; the asker waits at most
/// its timeout. Bounded: at most `capacity` questions wait, a question beyond is answered at
/// once with nothing (its partitions then come from the store).
final class OpenBucketMailbox: Sendable {
    /// Per partition the worker owns: its answer, or why it declined.
    typealias Answers = [Int32: Result<OpenBucketPart, OpenBucketRefusal>]

    private final class Question: Sendable {
        let request: OpenBucketRequest
        let limits: OpenBucketLimits
        private let continuation: Mutex<CheckedContinuation<Answers, Never>?>

        init(_ request: OpenBucketRequest, _ limits: OpenBucketLimits, _ c: CheckedContinuation<Answers, Never>) {
            self.request = request
            self.limits = limits
            continuation = Mutex(c)
        }

        /// Resumes the asker once; later calls do nothing.
        func answer(_ a: Answers) { continuation.withLock { $0.take() }?.resume(returning: a) }
        var isAnswered: Bool { continuation.withLock { $0 == nil } }
    }

    private let queue = Mutex<[Question]>([])
    /// Set while questions wait: the worker checks it between messages (one relaxed load).
    let hasQuestions = Atomic<Bool>(false)
    let capacity: Int
    /// Wakes the worker's poll, so a question is answered at once rather than when the poll's
    /// timeout ends (set while the worker's consumer exists).
    private let waker = Mutex<(@Sendable () -> Void)?>(nil)

    init(capacity: Int = 64) { self.capacity = capacity }

    /// Sets (or clears) what wakes the worker when a question arrives.
    func setWaker(_ wake: (@Sendable () -> Void)?) { waker.withLock { $0 = wake } }

    /// Asks the worker; nothing when the mailbox is full or the worker does not answer within
    /// `timeout` (busy with a long batch, stopping).
    func ask(_ request: OpenBucketRequest, limits: OpenBucketLimits, timeout: Duration) async -> Answers {
        await withCheckedContinuation { (c: CheckedContinuation<Answers, Never>) in
            let q = Question(request, limits, c)
            let accepted = queue.withLock { queue -> Bool in
                queue.removeAll { $0.isAnswered }
                guard queue.count < capacity else { return false }
                queue.append(q)
                hasQuestions.store(true, ordering: .releasing)
                return true
            }
            guard accepted else { return q.answer([:]) }
            waker.withLock { $0 }?()
            Task {
                try? await Task.sleep(for: timeout)
                q.answer([:])
            }
        }
    }

    /// Answers every waiting question with `answer` (on the worker's thread).
    func drain(_ answer: (OpenBucketRequest, OpenBucketLimits) -> Answers) {
        let waiting = queue.withLock { queue -> [Question] in
            hasQuestions.store(false, ordering: .relaxed)
            defer { queue.removeAll() }
            return queue
        }
        for q in waiting where !q.isAnswered { q.answer(answer(q.request, q.limits)) }
    }
}
