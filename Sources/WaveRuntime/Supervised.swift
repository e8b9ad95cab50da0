import Logging
import WaveRedis

/// Runs one of the orchestrator's long-running loops (a consumer, a listener, the legacy bridge,
/// maintenance) until it is cancelled: an error, or a return that cancellation did not cause,
/// restarts it after a jittered backoff. Only cancellation ends it.
///
/// A loop that ran for ``SupervisionPolicy/healthyAfter`` before it failed starts again from
/// the first (shortest) backoff step, so that one failure a day never waits a whole second.
public struct SupervisionPolicy: Sendable {
    /// The wait before a restart: 100 ms doubling to 1 s, full jitter (the reconnect backoff).
    public var backoff = Backoff(base: .milliseconds(100), cap: .seconds(1))
    /// A run at least this long counts as healthy: the next failure waits the shortest step.
    public var healthyAfter: Duration = .seconds(10)
    /// Whether a loop that returns by itself (not cancelled) is started again.
    public var restartOnReturn = true

    /// The default policy.
    public init() {}
}

/// Runs `body` under supervision (``SupervisionPolicy``); returns when the task is cancelled,
/// or when `body` returns and the policy does not restart loops that return.
/// - Parameters:
///   - name: the loop's name in log lines.
///   - restarts: called before each restart with the number of restarts so far (tests, metrics).
public func supervised(
    _ name: String, logger: Logger, policy: SupervisionPolicy = SupervisionPolicy(),
    restarts: @Sendable (Int) -> Void = { _ in }, _ body: @Sendable () async throws -> Void
) async {
    var attempt = 0
    var count = 0
    let clock = ContinuousClock()
    while !Task.isCancelled {
        let started = clock.now
        do {
            try await body()
            if Task.isCancelled || !policy.restartOnReturn { return }
            logger.warning("\(name) ended by itself; starting it again")
        } catch is CancellationError where Task.isCancelled {
            return
        } catch {
            if Task.isCancelled { return }
            logger.error("\(name) failed; starting it again", metadata: ["wave.error": "\(error)"])
        }
        if clock.now - started >= policy.healthyAfter { attempt = 0 }
        // sleep: backoff before restarting a failed loop
        do { try await Task.sleep(for: policy.backoff.delay(attempt: attempt)) } catch { return }
        attempt += 1
        count += 1
        restarts(count)
    }
}
