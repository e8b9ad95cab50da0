import NIOCore

/// A `TaskExecutor` that runs jobs on one NIO event loop.
///
/// Code inside `withTaskExecutorPreference(EventLoopTaskExecutor(loop)) { … }` runs on that
/// loop's thread, and so does every continuation a reply resumes there. Awaiting a reply then
/// costs no thread hop: the round trip stays on the event loop, as in a callback-based client.
/// Use it for latency-critical loops that talk to one connection (consumers, benchmarks).
public final class EventLoopTaskExecutor: TaskExecutor, @unchecked Sendable {
    /// The event loop that runs the jobs.
    public let eventLoop: any EventLoop

    /// Creates an executor for `eventLoop`.
    public init(_ eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let unowned = UnownedJob(job)
        self.eventLoop.execute {
            unowned.runSynchronously(on: self.asUnownedTaskExecutor())
        }
    }
}
