import NIOCore
import RESP
import Testing
import WaveTesting

@testable import WaveRedis

@Suite("Connection state machine")
struct StateMachineTests {
    typealias Machine = RedisConnectionStateMachine<String>

    static func token(_ text: String) -> RESPToken {
        try! RESPToken(validating: ByteBuffer(string: text))
    }

    static func request(
        _ id: UInt64, expected: Int = 1, deadline: NIODeadline = .uptimeNanoseconds(1_000), blocking: Bool = false, subscription: Bool = false
    ) -> Machine.Request {
        Machine.Request(id: id, sink: "r\(id)", expected: expected, deadline: deadline, blocking: blocking, subscription: subscription)
    }

    @Test("replies complete requests in FIFO order; a pipeline collects all its replies")
    func fifo() {
        var machine = Machine(resp3: true)
        _ = machine.send(Self.request(1))
        _ = machine.send(Self.request(2, expected: 3))
        _ = machine.send(Self.request(3))
        guard case .succeed("r1", let first) = machine.receive(Self.token("+a\r\n")) else {
            Issue.record("r1")
            return
        }
        #expect(first.map(\.stringValue) == ["a"])
        guard case .none = machine.receive(Self.token(":1\r\n")) else {
            Issue.record("partial")
            return
        }
        guard case .none = machine.receive(Self.token(":2\r\n")) else {
            Issue.record("partial")
            return
        }
        guard case .succeed("r2", let batch) = machine.receive(Self.token(":3\r\n")) else {
            Issue.record("r2")
            return
        }
        #expect(batch.count == 3)
        guard case .succeed("r3", _) = machine.receive(Self.token("-ERR x\r\n")) else {
            Issue.record("r3")
            return
        }
        #expect(machine.inFlight == 0)
    }

    @Test("a reply nobody asked for closes the connection as a protocol violation")
    func unexpectedReply() {
        var machine = Machine(resp3: true)
        guard case .closeWithError(let error, let sinks) = machine.receive(Self.token("+OK\r\n")) else {
            Issue.record("expected close")
            return
        }
        #expect(error.code == .protocolViolation)
        #expect(sinks.isEmpty)
        guard case .fail("r1", let sendError) = machine.send(Self.request(1)) else {
            Issue.record("closed")
            return
        }
        #expect(sendError.code == .protocolViolation)
    }

    @Test("RESP3 push frames go to the push handler, not to the request in flight")
    func pushes() {
        var machine = Machine(resp3: true)
        _ = machine.send(Self.request(1))
        guard case .push = machine.receive(Self.token(">3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\nx\r\n")) else {
            Issue.record("push")
            return
        }
        guard case .succeed("r1", _) = machine.receive(Self.token("+PONG\r\n")) else {
            Issue.record("reply")
            return
        }
    }

    @Test("subscription confirmations complete the subscribe request and are delivered too")
    func subscriptionConfirmations() {
        var machine = Machine(resp3: true)
        _ = machine.send(Self.request(1, expected: 2, subscription: true))
        guard case .pushAndSucceed(_, nil, _) = machine.receive(Self.token(">3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n")) else {
            Issue.record("first confirmation")
            return
        }
        guard case .pushAndSucceed(_, "r1", let all) = machine.receive(Self.token(">3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n")) else {
            Issue.record("second confirmation")
            return
        }
        #expect(all.count == 2)
    }

    @Test("RESP2 subscribed mode: arrays are messages, PING replies are replies")
    func resp2Subscribed() {
        var machine = Machine(resp3: false)
        _ = machine.send(Self.request(1, subscription: true))
        guard case .pushAndSucceed(_, "r1", _) = machine.receive(Self.token("*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n")) else {
            Issue.record("confirmation")
            return
        }
        guard case .push = machine.receive(Self.token("*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$2\r\nhi\r\n")) else {
            Issue.record("message")
            return
        }
        _ = machine.send(Self.request(2))
        guard case .succeed("r2", _) = machine.receive(Self.token("*2\r\n$4\r\npong\r\n$0\r\n\r\n")) else {
            Issue.record("pong")
            return
        }
    }

    @Test("the deadline fails everything in flight and closes; before it, the timer re-arms")
    func deadline() {
        var machine = Machine(resp3: true)
        _ = machine.send(Self.request(1, deadline: .uptimeNanoseconds(5_000)))
        _ = machine.send(Self.request(2, deadline: .uptimeNanoseconds(9_000)))
        guard case .reschedule(let next) = machine.timerFired(now: .uptimeNanoseconds(4_000)) else {
            Issue.record("re-arm")
            return
        }
        #expect(next == .uptimeNanoseconds(5_000))
        guard case .closeWithError(let error, let sinks) = machine.timerFired(now: .uptimeNanoseconds(5_000)) else {
            Issue.record("timeout")
            return
        }
        #expect(error.code == .timeout)
        #expect(sinks == ["r1", "r2"])
        guard case .none = machine.timerFired(now: .uptimeNanoseconds(10_000)) else {
            Issue.record("closed")
            return
        }
    }

    @Test("cancelling a request fails it at once and its late reply is discarded")
    func cancel() {
        var machine = Machine(resp3: true)
        _ = machine.send(Self.request(1))
        _ = machine.send(Self.request(2))
        guard case .fail("r1") = machine.cancel(id: 1) else {
            Issue.record("cancel")
            return
        }
        guard case .none = machine.cancel(id: 1) else {
            Issue.record("twice")
            return
        }
        guard case .none = machine.receive(Self.token("+late\r\n")) else {
            Issue.record("discard")
            return
        }
        guard case .succeed("r2", let tokens) = machine.receive(Self.token("+mine\r\n")) else {
            Issue.record("r2")
            return
        }
        #expect(tokens.first?.stringValue == "mine")
    }

    @Test("cancelling a blocking command closes the connection")
    func cancelBlocking() {
        var machine = Machine(resp3: true)
        _ = machine.send(Self.request(1, blocking: true))
        guard case .closeWithError(let error, let sinks) = machine.cancel(id: 1) else {
            Issue.record("close")
            return
        }
        #expect(error.code == .cancelled)
        #expect(sinks == ["r1"])
    }
}

@Suite("Circuit breaker and backoff")
struct CircuitBreakerTests {
    let start = ContinuousClock.now

    @Test("opens after the threshold of consecutive failures; a success resets the count")
    func trips() {
        var machine = CircuitBreaker.StateMachine(configuration: .init(failureThreshold: 3))
        let jitter: (Int) -> Duration = { .milliseconds(100 << $0) }
        #expect(machine.record(success: false, probe: false, now: self.start, jitter: jitter) == nil)
        #expect(machine.record(success: true, probe: false, now: self.start, jitter: jitter) == nil)
        #expect(machine.record(success: false, probe: false, now: self.start, jitter: jitter) == nil)
        #expect(machine.record(success: false, probe: false, now: self.start, jitter: jitter) == nil)
        let transition = machine.record(success: false, probe: false, now: self.start, jitter: jitter)
        #expect(transition?.from == .closed && transition?.to == .open)
        #expect(machine.state == .open)
        #expect(machine.acquire(now: self.start + .milliseconds(50)).0 == .rejected(until: self.start + .milliseconds(100)))
    }

    @Test("after the backoff exactly one probe goes through; its outcome closes or reopens for longer")
    func halfOpen() {
        var machine = CircuitBreaker.StateMachine(configuration: .init(failureThreshold: 1))
        let jitter: (Int) -> Duration = { .milliseconds(100 << $0) }
        _ = machine.record(success: false, probe: false, now: self.start, jitter: jitter)
        let (permit, transition) = machine.acquire(now: self.start + .milliseconds(100))
        #expect(permit == .probe)
        #expect(transition?.to == .halfOpen)
        guard case .rejected = machine.acquire(now: self.start + .milliseconds(101)).0 else {
            Issue.record("a second probe went through")
            return
        }
        // A late failure from a request admitted earlier is not the probe's.
        #expect(machine.record(success: false, probe: false, now: self.start + .milliseconds(102), jitter: jitter) == nil)
        let reopened = machine.record(success: false, probe: true, now: self.start + .milliseconds(110), jitter: jitter)
        #expect(reopened?.to == .open)
        #expect(machine.reopensAt == self.start + .milliseconds(310))
        #expect(machine.acquire(now: self.start + .milliseconds(310)).0 == .probe)
        #expect(machine.record(success: true, probe: true, now: self.start + .milliseconds(311), jitter: jitter)?.to == .closed)
        #expect(machine.acquire(now: self.start + .milliseconds(312)).0 == .allowed)
    }

    @Test("the breaker object reports every transition to observers")
    func observable() async {
        let breaker = CircuitBreaker(configuration: .init(failureThreshold: 1, openBackoff: Backoff(base: .zero, cap: .zero)), logger: .init(label: "test"))
        let transitions = breaker.transitions()
        breaker.record(success: false, probe: false)
        #expect(breaker.state == .open)
        #expect(breaker.acquire() == .probe)
        breaker.record(success: true, probe: true)
        var seen: [CircuitBreaker.State] = []
        for await transition in transitions {
            seen.append(transition.to)
            if seen.count == 3 { break }
        }
        #expect(seen == [.open, .halfOpen, .closed])
    }

    @Test("backoff: 100 ms doubling to a 5 s cap, full jitter within the ceiling")
    func backoff() {
        let backoff = Backoff()
        #expect((0...8).map { backoff.ceiling(attempt: $0) } == [100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000].map { .milliseconds($0) })
        var rng = SystemRandomNumberGenerator()
        var sawLow = false
        for attempt in 0..<20 {
            for _ in 0..<50 {
                let delay = backoff.delay(attempt: attempt, using: &rng)
                #expect(delay >= .zero && delay <= backoff.ceiling(attempt: attempt))
                if delay < backoff.ceiling(attempt: attempt) / 2 { sawLow = true }
            }
        }
        #expect(sawLow)
    }
}
