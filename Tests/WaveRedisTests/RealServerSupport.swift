import Testing
import WaveTesting

@testable import WaveRedis

/// Waits for the breaker to reach `state`, resumed by its transitions, with a deadline.
func waitForBreaker(_ breaker: CircuitBreaker, _ state: CircuitBreaker.State, within deadline: Duration) async throws {
    if breaker.state == state { return }
    let transitions = breaker.transitions()
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask {
            for await transition in transitions where transition.to == state { return }
        }
        group.addTask {
            try await Task.sleep(for: deadline)
            throw TestEnvironmentError(message: "the breaker did not become \(state) within \(deadline)")
        }
        if breaker.state != state { try await group.next() }
        group.cancelAll()
    }
}
