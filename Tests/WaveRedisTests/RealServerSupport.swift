import Synchronization
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

/// The result of an unstructured task, or an error naming `step` when it has not finished within
/// `deadline`: a request that never completes fails its test instead of hanging the whole run
/// (a task group could not leave a child that ignores cancellation behind; this can).
func result<Value: Sendable>(of task: Task<Value, any Error>, within deadline: Duration, _ step: String) async throws -> Result<Value, any Error> {
    let resumed = Once()
    return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Result<Value, any Error>, any Error>) in
        Task {
            let result = await task.result
            if resumed.claim() { continuation.resume(returning: result) }
        }
        Task {
            try? await Task.sleep(for: deadline)
            if resumed.claim() {
                continuation.resume(throwing: TestEnvironmentError(message: "\(step) did not finish within \(deadline)"))
            }
        }
    }
}

/// True for the first caller only.
final class Once: Sendable {
    let done = Mutex(false)
    func claim() -> Bool {
        self.done.withLock { done in
            defer { done = true }
            return !done
        }
    }
}
