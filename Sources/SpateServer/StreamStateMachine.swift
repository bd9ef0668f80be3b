public import SpateWire

/// One call's life on the server (I/O-free): HEADERS open it, the request message completes
/// it, the call's task produces answers and one terminal status. While the peer does not read,
/// the stream keeps only the newest answer (a watcher that drains gets the latest update,
/// never a queue of them) and holds its status behind it.
public struct StreamStateMachine: Sendable, Hashable {
    /// Where the call is.
    public enum State: Sendable, Hashable {
        /// HEADERS arrived; the request message has not.
        case awaitingRequest
        /// The call's task runs.
        case running
        /// The task ended with this status; an answer still waits for the peer to read.
        case draining(RPCError)
        /// The status was written (or the call was cancelled): nothing more is sent.
        case closed
    }

    /// What to do with a produced answer.
    public enum ProduceOutcome: Sendable, Hashable {
        /// Write it now.
        case write([UInt8])
        /// Kept as the newest answer until the peer reads (replacing any older one).
        case held
        /// Larger than the peer accepts: end the call with RESOURCE_EXHAUSTED.
        case tooLarge(Int)
        /// The stream is over: drop it.
        case ignore
    }

    /// What to do when the call's task ends.
    public enum FinishOutcome: Sendable, Hashable {
        /// Write the status now; the stream is closed.
        case writeStatus(RPCError)
        /// An answer waits for the peer; the status follows it when the peer reads.
        case held
        /// The stream was already over.
        case ignore
    }

    /// The method called.
    public let method: Method
    /// The call's state.
    public private(set) var state = State.awaitingRequest
    /// The newest answer not yet written because the peer does not read.
    public private(set) var pending: [UInt8]?
    /// Answers replaced by a newer one before the peer read them.
    public private(set) var replaced = 0

    /// A stream whose HEADERS named `method`.
    public init(method: Method) { self.method = method }

    /// The request message arrived; true when the call should start now (a second DATA, or
    /// DATA after the call started, is ignored).
    public mutating func receiveRequest() -> Bool {
        guard state == .awaitingRequest else { return false }
        state = .running
        return true
    }

    /// The call's task produced an answer.
    public mutating func produce(_ message: [UInt8], writable: Bool, maxSize: Int) -> ProduceOutcome {
        guard state == .running else { return .ignore }
        guard message.count <= maxSize else { return .tooLarge(message.count) }
        if writable && pending == nil { return .write(message) }
        if pending != nil { replaced += 1 }
        pending = message
        return .held
    }

    /// The call's task ended (or its deadline passed, or it was refused) with `status`.
    public mutating func finish(_ status: RPCError) -> FinishOutcome {
        switch state {
        case .closed, .draining: return .ignore
        case .awaitingRequest, .running:
            if pending != nil {
                state = .draining(status)
                return .held
            }
            state = .closed
            return .writeStatus(status)
        }
    }

    /// The peer reads again: what to write, in order (the newest answer, then the status if
    /// the call has ended).
    public mutating func drain() -> (answer: [UInt8]?, status: RPCError?) {
        let answer = pending
        pending = nil
        if case .draining(let status) = state {
            state = .closed
            return (answer, status)
        }
        return (answer, nil)
    }

    /// The call is cancelled (CANCEL, GOAWAY, connection closed): nothing more is sent.
    public mutating func cancel() {
        state = .closed
        pending = nil
    }

    /// True while an answer waits for the peer.
    public var isHolding: Bool { pending != nil }
}
