/// Exponential backoff with full jitter: attempt *n* waits a uniformly random time between zero
/// and `min(cap, base × 2ⁿ)`.
///
/// Full jitter spreads reconnecting clients apart so a restarted server is not hit by all of
/// them at once.
public struct Backoff: Sendable, Hashable {
    /// The ceiling of the first wait. Default 100 ms.
    public var base: Duration
    /// The largest ceiling. Default 5 s.
    public var cap: Duration

    /// Creates a backoff.
    public init(base: Duration = .milliseconds(100), cap: Duration = .seconds(5)) {
        self.base = base
        self.cap = cap
    }

    /// The ceiling of wait number `attempt` (0-based): `min(cap, base × 2^attempt)`.
    public func ceiling(attempt: Int) -> Duration {
        let exponent = min(max(attempt, 0), 30)
        let ceiling = self.base * (1 << exponent)
        return ceiling < self.cap ? ceiling : self.cap
    }

    /// A random wait for attempt number `attempt` (0-based).
    public func delay(attempt: Int, using generator: inout some RandomNumberGenerator) -> Duration {
        let ceiling = self.ceiling(attempt: attempt)
        let nanos = ceiling.components.seconds * 1_000_000_000 + ceiling.components.attoseconds / 1_000_000_000
        guard nanos > 0 else { return .zero }
        return .nanoseconds(Int64.random(in: 0...nanos, using: &generator))
    }

    /// A random wait for attempt number `attempt` (0-based), from the system generator.
    public func delay(attempt: Int) -> Duration {
        var generator = SystemRandomNumberGenerator()
        return self.delay(attempt: attempt, using: &generator)
    }
}
