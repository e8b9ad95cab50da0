import DequeModule
import NIOCore
import RESP

/// The protocol logic of one connection, free of I/O: it matches replies to requests in FIFO
/// order, routes push frames, enforces deadlines and decides what a cancellation, a timeout or a
/// broken connection does. The channel handler performs the actions it returns, so this is
/// tested without sockets.
///
/// `Sink` is whatever completes a request (a promise in production, a plain value in tests).
struct RedisConnectionStateMachine<Sink> {
    struct Request {
        let id: UInt64
        let sink: Sink
        /// Replies this request waits for (1 for a command, N for a pipeline, one per channel
        /// for a subscription change).
        let expected: Int
        var received: [RESPToken] = []
        let deadline: NIODeadline
        /// The caller gave up; the reply is still read (to keep FIFO order) and discarded.
        var cancelled = false
        /// A blocking command: cancelling it closes the connection, since the server would
        /// otherwise keep it blocked.
        let blocking: Bool
        /// A (P)SUBSCRIBE/(P)UNSUBSCRIBE whose confirmations arrive as push frames.
        let subscription: Bool
    }

    enum State {
        case active
        case closed(RedisClientError)
    }

    private(set) var state: State = .active
    private(set) var requests: Deque<Request> = []
    /// RESP2 connections in subscribed mode deliver messages as ordinary arrays.
    private(set) var resp2Subscribed = false
    let resp3: Bool

    init(resp3: Bool) {
        self.resp3 = resp3
    }

    var inFlight: Int { self.requests.count }

    // MARK: Sending

    enum SendAction {
        case write
        case fail(Sink, RedisClientError)
    }

    mutating func send(_ request: Request) -> SendAction {
        switch self.state {
        case .closed(let error):
            return .fail(request.sink, error)
        case .active:
            if request.subscription, !self.resp3 { self.resp2Subscribed = true }
            self.requests.append(request)
            return .write
        }
    }

    // MARK: Receiving

    enum ReceiveAction {
        case none
        case succeed(Sink, [RESPToken])
        case push(RESPToken)
        /// A push that also completes (part of) a subscription request.
        case pushAndSucceed(RESPToken, Sink?, [RESPToken])
        case closeWithError(RedisClientError, [Sink])
    }

    mutating func receive(_ token: RESPToken) -> ReceiveAction {
        guard case .active = self.state else { return .none }
        if let kind = self.pushKind(token) {
            // Subscription confirmations complete the subscription request at the front.
            if kind.isConfirmation, let front = self.requests.first, front.subscription {
                return self.collect(token, asPush: true)
            }
            return .push(token)
        }
        guard !self.requests.isEmpty else {
            let error = RedisClientError(.protocolViolation, "the server sent a reply nobody asked for: \(token.description.prefix(100))")
            return .closeWithError(error, self.close(error))
        }
        return self.collect(token, asPush: false)
    }

    private mutating func collect(_ token: RESPToken, asPush: Bool) -> ReceiveAction {
        if self.requests[0].expected == 1, !asPush {
            let done = self.requests.removeFirst()
            return done.cancelled ? .none : .succeed(done.sink, [token])
        }
        if self.requests[0].received.isEmpty { self.requests[0].received.reserveCapacity(self.requests[0].expected) }
        self.requests[0].received.append(token)
        guard self.requests[0].received.count >= self.requests[0].expected else {
            return asPush ? .pushAndSucceed(token, nil, []) : .none
        }
        let done = self.requests.removeFirst()
        if done.cancelled { return asPush ? .push(token) : .none }
        return asPush ? .pushAndSucceed(token, done.sink, done.received) : .succeed(done.sink, done.received)
    }

    enum PushKind {
        case message, confirmation, other
        var isConfirmation: Bool { if case .confirmation = self { true } else { false } }
    }

    private func pushKind(_ token: RESPToken) -> PushKind? {
        // Fast path: only a push frame (or an array in RESP2 subscribed mode) can be a push.
        let first = token.base.getInteger(at: token.base.readerIndex, as: UInt8.self)
        guard
            first == RESPTypeIdentifier.push.rawValue || first == RESPTypeIdentifier.attribute.rawValue
                || (self.resp2Subscribed && first == RESPTypeIdentifier.array.rawValue)
        else { return nil }
        let elements: RESPToken.Array
        switch token.value {
        case .push(let array): elements = array
        case .array(let array) where self.resp2Subscribed: elements = array
        default: return nil
        }
        guard let first = elements.first(where: { _ in true })?.stringValue?.lowercased() else {
            return self.resp3 ? .other : nil
        }
        switch first {
        case "subscribe", "unsubscribe", "psubscribe", "punsubscribe": return .confirmation
        case "message", "pmessage": return .message
        default:
            // In RESP2 subscribed mode a PING reply is ["pong", ""]: an ordinary reply.
            return self.resp3 ? .other : nil
        }
    }

    // MARK: Deadlines

    enum TimerAction {
        case none
        case reschedule(NIODeadline)
        case closeWithError(RedisClientError, [Sink])
    }

    /// The earliest deadline of any request still in flight.
    var earliestDeadline: NIODeadline? {
        self.requests.lazy.map(\.deadline).min()
    }

    mutating func timerFired(now: NIODeadline) -> TimerAction {
        guard case .active = self.state, let earliest = self.earliestDeadline else { return .none }
        if earliest <= now {
            let error = RedisClientError(.timeout, "no reply within the command timeout; the connection was closed")
            return .closeWithError(error, self.close(error))
        }
        return .reschedule(earliest)
    }

    // MARK: Cancellation and failure

    enum CancelAction {
        case none
        case fail(Sink)
        case closeWithError(RedisClientError, [Sink])
    }

    mutating func cancel(id: UInt64) -> CancelAction {
        guard case .active = self.state, let index = self.requests.firstIndex(where: { $0.id == id }) else {
            return .none
        }
        guard !self.requests[index].cancelled else { return .none }
        if self.requests[index].blocking {
            let error = RedisClientError(.cancelled, "a blocking command was cancelled; its connection was closed")
            return .closeWithError(error, self.close(error))
        }
        self.requests[index].cancelled = true
        return .fail(self.requests[index].sink)
    }

    /// Closes the connection's logic: returns every sink still waiting, in order.
    mutating func close(_ error: RedisClientError) -> [Sink] {
        guard case .active = self.state else { return [] }
        self.state = .closed(error)
        let sinks = self.requests.filter { !$0.cancelled }.map(\.sink)
        self.requests.removeAll()
        return sinks
    }
}
