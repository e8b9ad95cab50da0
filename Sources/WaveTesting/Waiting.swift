/// Runs `body` with a deadline; throws ``TestEnvironmentError`` naming `what` when the deadline
/// passes first (the body is cancelled).
public func within<T: Sendable>(_ deadline: Duration, _ what: String, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            // sleep: deadline
            try await Task.sleep(for: deadline)
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let value = first else { throw TestEnvironmentError(message: "timed out after \(deadline): \(what)") }
        return value
    }
}

/// Waits until `condition` holds, looking again every 50 ms, for at most `deadline`. Test
/// scaffolding for state another process changes (a store, a server): product code waits on
/// events instead.
public func eventually(_ what: String, deadline: Duration = .seconds(15), _ condition: @escaping @Sendable () async throws -> Bool) async throws {
    _ = try await within(deadline, what) {
        while try await !condition() {
            // sleep: test-scaffolding
            try await Task.sleep(for: .milliseconds(50))
        }
        return true
    }
}
