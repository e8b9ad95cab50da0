import Dispatch

/// The store's own serial executor: one dispatch queue on which every SQLite write runs, never
/// the event loop that serves Redis.
///
/// A transaction that waits for another process's write lock (SQLite's busy timeout) holds this
/// queue and nothing else: Redis's connections and timers keep running, and so does any task
/// that does not need the store. The signal handling of an orchestrator runs its tasks here too
/// (it is a `TaskExecutor`), so that its many store calls cost no thread hop: a call made on this
/// executor runs at once; a call made anywhere else is sent here and its caller resumed with the
/// result.
public final class StoreExecutor: TaskExecutor, @unchecked Sendable {
    // @unchecked: the queue is immutable and thread-safe; the rest is a constant.
    let queue: DispatchQueue
    private static let key = DispatchSpecificKey<ObjectIdentifier>()

    /// Creates an executor on a new serial queue named `label`.
    public init(label: String = "wave.store") {
        self.queue = DispatchQueue(label: label, qos: .userInitiated)
        self.queue.setSpecific(key: Self.key, value: ObjectIdentifier(self))
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        self.queue.async { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }

    /// Whether the calling code runs on this executor.
    public var isCurrent: Bool { DispatchQueue.getSpecific(key: Self.key) == ObjectIdentifier(self) }

    /// Runs `body` on this executor: at once when the caller is on it, else on its queue while
    /// the caller is suspended.
    public func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        if self.isCurrent { return try body() }
        return try await withCheckedThrowingContinuation { continuation in
            self.queue.async { continuation.resume(with: Result { try body() }) }
        }
    }
}
