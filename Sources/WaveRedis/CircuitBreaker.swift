import Logging
import Synchronization

/// A circuit breaker in front of Redis: after ``Configuration/failureThreshold`` consecutive
/// connection failures it opens and requests fail at once with
/// ``RedisClientError/Code/circuitOpen``; after a backoff it lets exactly one probe through
/// (half-open), which closes it on success and opens it again, for longer, on failure.
///
/// The state is readable at any time (``state``) and every transition is logged once and
/// delivered to every ``transitions()`` stream.
public final class CircuitBreaker: Sendable {
    /// The breaker's state.
    public enum State: String, Sendable, Hashable {
        /// Requests flow.
        case closed
        /// Requests fail at once.
        case open
        /// One probe request is allowed through.
        case halfOpen = "half_open"
    }

    /// A change of state.
    public struct Transition: Sendable, Hashable {
        /// The state before.
        public var from: State
        /// The state after.
        public var to: State
        /// When it happened.
        public var at: ContinuousClock.Instant
        /// Why, for logs.
        public var reason: String
    }

    /// Breaker settings.
    public struct Configuration: Sendable, Hashable {
        /// Consecutive connection failures that open the breaker. Default 3.
        public var failureThreshold: Int
        /// How long the breaker stays open before a probe, growing with each failed probe.
        /// Default 100 ms doubling to 1 s, full jitter.
        public var openBackoff: Backoff

        /// Creates settings.
        public init(failureThreshold: Int = 3, openBackoff: Backoff = Backoff(base: .milliseconds(100), cap: .seconds(1))) {
            self.failureThreshold = failureThreshold
            self.openBackoff = openBackoff
        }
    }

    /// What ``acquire(now:)`` decided.
    public enum Permit: Sendable, Hashable {
        /// Send the request.
        case allowed
        /// Send the request as the single half-open probe; report its outcome.
        case probe
        /// Do not send; the breaker is open (or a probe is already out) until the given instant.
        case rejected(until: ContinuousClock.Instant)
    }

    /// The pure logic, separate from locking and logging so that it is tested on its own.
    public struct StateMachine: Sendable {
        enum Inner: Sendable {
            case closed(failures: Int)
            case open(until: ContinuousClock.Instant, trips: Int)
            case halfOpen(trips: Int, probeOut: Bool)
        }
        var inner: Inner = .closed(failures: 0)
        let configuration: Configuration

        /// Creates a closed breaker.
        public init(configuration: Configuration) {
            self.configuration = configuration
        }

        /// The current state.
        public var state: State {
            switch self.inner {
            case .closed: .closed
            case .open: .open
            case .halfOpen: .halfOpen
            }
        }

        /// When an open breaker will let a probe through.
        public var reopensAt: ContinuousClock.Instant? {
            if case .open(let until, _) = self.inner { return until }
            return nil
        }

        /// Decides whether a request may go; may move open → half-open.
        public mutating func acquire(now: ContinuousClock.Instant) -> (Permit, Transition?) {
            switch self.inner {
            case .closed:
                return (.allowed, nil)
            case .open(let until, let trips):
                guard now >= until else { return (.rejected(until: until), nil) }
                self.inner = .halfOpen(trips: trips, probeOut: true)
                return (.probe, Transition(from: .open, to: .halfOpen, at: now, reason: "probing the server"))
            case .halfOpen(let trips, let probeOut):
                if probeOut { return (.rejected(until: now), nil) }
                self.inner = .halfOpen(trips: trips, probeOut: true)
                return (.probe, nil)
            }
        }

        /// Records a request's outcome. `probe` says whether it was the half-open probe.
        public mutating func record(
            success: Bool,
            probe: Bool,
            now: ContinuousClock.Instant,
            jitter: (Int) -> Duration
        ) -> Transition? {
            switch self.inner {
            case .closed(let failures):
                if success {
                    self.inner = .closed(failures: 0)
                    return nil
                }
                let next = failures + 1
                guard next >= self.configuration.failureThreshold else {
                    self.inner = .closed(failures: next)
                    return nil
                }
                self.inner = .open(until: now + jitter(0), trips: 1)
                return Transition(from: .closed, to: .open, at: now, reason: "\(next) consecutive connection failures")
            case .halfOpen(let trips, _):
                guard probe else { return nil }
                if success {
                    self.inner = .closed(failures: 0)
                    return Transition(from: .halfOpen, to: .closed, at: now, reason: "probe succeeded")
                }
                self.inner = .open(until: now + jitter(trips), trips: trips + 1)
                return Transition(from: .halfOpen, to: .open, at: now, reason: "probe failed")
            case .open:
                // Outcomes of requests admitted before the breaker opened change nothing.
                return nil
            }
        }
    }

    private struct Locked {
        var machine: StateMachine
        var observers: [Int: AsyncStream<Transition>.Continuation] = [:]
        var nextObserver = 0
    }

    private let locked: Mutex<Locked>
    private let logger: Logger
    /// The settings.
    public let configuration: Configuration

    /// Creates a closed breaker.
    public init(configuration: Configuration = Configuration(), logger: Logger) {
        self.configuration = configuration
        self.locked = Mutex(Locked(machine: StateMachine(configuration: configuration)))
        self.logger = logger
    }

    /// The current state.
    public var state: State { self.locked.withLock { $0.machine.state } }

    /// When an open breaker will admit its next probe.
    public var reopensAt: ContinuousClock.Instant? { self.locked.withLock { $0.machine.reopensAt } }

    /// Asks whether a request may be sent now.
    public func acquire(now: ContinuousClock.Instant = .now) -> Permit {
        let (permit, transition) = self.locked.withLock { $0.machine.acquire(now: now) }
        if let transition { self.publish(transition) }
        return permit
    }

    /// Reports the outcome of a request that ``acquire(now:)`` allowed.
    public func record(success: Bool, probe: Bool, now: ContinuousClock.Instant = .now) {
        let backoff = self.configuration.openBackoff
        let transition = self.locked.withLock {
            $0.machine.record(success: success, probe: probe, now: now) { backoff.delay(attempt: $0) }
        }
        if let transition { self.publish(transition) }
    }

    /// A stream of every transition from now on. It ends when the breaker is deallocated or the
    /// consumer stops iterating.
    public func transitions() -> AsyncStream<Transition> {
        let (stream, continuation) = AsyncStream.makeStream(of: Transition.self, bufferingPolicy: .bufferingNewest(64))
        let id = self.locked.withLock { state in
            let id = state.nextObserver
            state.nextObserver += 1
            state.observers[id] = continuation
            return id
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.locked.withLock { $0.observers.removeValue(forKey: id) }
        }
        return stream
    }

    private func publish(_ transition: Transition) {
        switch transition.to {
        case .open:
            self.logger.warning(
                "Redis circuit breaker opened: \(transition.reason)",
                metadata: ["wave.circuit": "open"]
            )
        case .closed:
            self.logger.warning("Redis circuit breaker closed: \(transition.reason)", metadata: ["wave.circuit": "closed"])
        case .halfOpen:
            self.logger.info("Redis circuit breaker half-open: \(transition.reason)", metadata: ["wave.circuit": "half_open"])
        }
        let observers = self.locked.withLock { Array($0.observers.values) }
        for observer in observers { observer.yield(transition) }
    }

    deinit {
        for observer in self.locked.withLock({ Array($0.observers.values) }) { observer.finish() }
    }
}
