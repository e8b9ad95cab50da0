import DequeModule
import Logging
import NIOCore
import NIOSSL
import Synchronization

/// A pool of connections for ordinary (non-blocking) commands.
///
/// Leasing takes an idle connection (most recently used first), opens a new one while fewer than
/// ``RedisConfiguration/Pool/maxConnections`` are open, or waits, with a deadline, for one to be
/// returned. Closed connections are dropped when they come back or are found idle.
/// ``maintain(now:)`` pings idle connections, closes those idle past the timeout above the
/// minimum, and reopens up to the minimum.
final class RedisConnectionPool: Sendable {
    private struct Idle {
        let connection: RedisConnection
        var lastUsed: ContinuousClock.Instant
    }

    private enum Grant {
        case connection(RedisConnection)
        /// A slot was reserved for the waiter: it opens the connection itself.
        case slot
    }

    private struct Waiter {
        let id: Int
        let continuation: CheckedContinuation<Grant, any Error>
    }

    private struct State {
        var idle: [Idle] = []
        var open = 0
        var waiters: Deque<Waiter> = []
        var nextWaiter = 0
        var shutDown = false
    }

    private enum Decision {
        case use(RedisConnection)
        case create
        case wait
        case fail(RedisClientError)
    }

    private let state = Mutex(State())
    let configuration: RedisConfiguration
    let eventLoopGroup: any EventLoopGroup
    let tlsContext: NIOSSLContext?
    let logger: Logger

    init(configuration: RedisConfiguration, eventLoopGroup: any EventLoopGroup, tlsContext: NIOSSLContext?, logger: Logger) {
        self.configuration = configuration
        self.eventLoopGroup = eventLoopGroup
        self.tlsContext = tlsContext
        self.logger = logger
    }

    /// Connections open or being opened.
    var openCount: Int { self.state.withLock { $0.open } }
    /// Connections idle in the pool.
    var idleCount: Int { self.state.withLock { $0.idle.count } }

    /// Runs `body` with a leased connection and returns it to the pool afterwards.
    func withConnection<Result: Sendable>(_ body: (RedisConnection) async throws -> Result) async throws -> Result {
        let connection = try await self.lease()
        do {
            let result = try await body(connection)
            self.release(connection)
            return result
        } catch {
            self.release(connection)
            throw error
        }
    }

    func lease() async throws -> RedisConnection {
        while true {
            let decision: Decision = self.state.withLock { state in
                if state.shutDown { return .fail(RedisClientError(.clientShutdown, "the Redis client was shut down")) }
                if let idle = state.idle.popLast() { return .use(idle.connection) }
                if state.open < self.configuration.pool.maxConnections {
                    state.open += 1
                    return .create
                }
                return .wait
            }
            switch decision {
            case .fail(let error):
                throw error
            case .use(let connection):
                if connection.isActive { return connection }
                self.discard(connection)
            case .create:
                return try await self.open()
            case .wait:
                switch try await self.waitForGrant() {
                case .connection(let connection):
                    if connection.isActive { return connection }
                    self.discard(connection)
                case .slot:
                    return try await self.open()
                }
            }
        }
    }

    func release(_ connection: RedisConnection) {
        guard connection.isActive else {
            self.discard(connection)
            return
        }
        let waiter: Waiter? = self.state.withLock { state in
            if state.shutDown { return nil }
            if let waiter = state.waiters.popFirst() { return waiter }
            state.idle.append(Idle(connection: connection, lastUsed: .now))
            return nil
        }
        if let waiter {
            waiter.continuation.resume(returning: .connection(connection))
        } else if self.state.withLock({ $0.shutDown }) {
            self.discard(connection)
            connection.channel.close(promise: nil)
        }
    }

    /// Forgets a connection that closed, handing its slot to a waiter if there is one.
    private func discard(_ connection: RedisConnection) {
        let waiter: Waiter? = self.state.withLock { state in
            if let waiter = state.waiters.popFirst() { return waiter }
            state.open -= 1
            return nil
        }
        waiter?.continuation.resume(returning: .slot)
    }

    private func open() async throws -> RedisConnection {
        do {
            return try await RedisConnection.connect(
                configuration: self.configuration,
                eventLoop: self.eventLoopGroup.next(),
                tlsContext: self.tlsContext,
                logger: self.logger
            )
        } catch {
            let waiter: Waiter? = self.state.withLock { state in
                state.open -= 1
                // A waiter may try again; it will most likely fail the same way and report it.
                guard let waiter = state.waiters.popFirst() else { return nil }
                state.open += 1
                return waiter
            }
            waiter?.continuation.resume(returning: .slot)
            throw error
        }
    }

    private func waitForGrant() async throws -> Grant {
        let id = self.state.withLock { state -> Int in
            state.nextWaiter += 1
            return state.nextWaiter
        }
        let timeout = self.configuration.commandTimeout
        let eventLoop = self.eventLoopGroup.next()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Grant, any Error>) in
                let enqueued = self.state.withLock { state -> Bool in
                    if state.shutDown { return false }
                    state.waiters.append(Waiter(id: id, continuation: continuation))
                    return true
                }
                guard enqueued else {
                    continuation.resume(throwing: RedisClientError(.clientShutdown, "the Redis client was shut down"))
                    return
                }
                // The wait has a deadline: every connection busy for longer than a command may
                // take means something is stuck.
                eventLoop.scheduleTask(in: TimeAmount(timeout)) {
                    self.failWaiter(id, RedisClientError(.timeout, "no pooled Redis connection became free within \(timeout)"))
                }
            }
        } onCancel: {
            self.failWaiter(id, RedisClientError(.cancelled, "the request was cancelled while waiting for a connection"))
        }
    }

    private func failWaiter(_ id: Int, _ error: RedisClientError) {
        let waiter: Waiter? = self.state.withLock { state in
            guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
            return state.waiters.remove(at: index)
        }
        waiter?.continuation.resume(throwing: error)
    }

    // MARK: Maintenance

    /// One maintenance pass: keep-alive `PING` on connections idle for a keep-alive interval,
    /// close connections idle past the idle timeout above the minimum, open up to the minimum.
    func maintain(now: ContinuousClock.Instant = .now) async {
        let pool = self.configuration.pool
        let (toPing, toClose): ([RedisConnection], [RedisConnection]) = self.state.withLock { state in
            var ping: [RedisConnection] = []
            var close: [RedisConnection] = []
            var keep: [Idle] = []
            for idle in state.idle {
                if !idle.connection.isActive {
                    state.open -= 1
                } else if now - idle.lastUsed >= pool.idleTimeout, state.open > pool.minConnections {
                    state.open -= 1
                    close.append(idle.connection)
                } else if now - idle.lastUsed >= pool.keepAliveInterval {
                    ping.append(idle.connection)
                } else {
                    keep.append(idle)
                }
            }
            state.idle = keep
            return (ping, close)
        }
        for connection in toClose { await connection.close() }
        for connection in toPing {
            do {
                _ = try await connection.send(PingCommand())
                self.release(connection)
            } catch {
                self.logger.debug("keep-alive PING failed; closing the connection", metadata: ["wave.error": "\(error)"])
                await connection.close()
                self.discard(connection)
            }
        }
        // Top up to the minimum.
        while true {
            let create = self.state.withLock { state -> Bool in
                guard !state.shutDown, state.open < pool.minConnections else { return false }
                state.open += 1
                return true
            }
            guard create else { break }
            do {
                let connection = try await self.open()
                self.release(connection)
            } catch {
                self.logger.debug("could not open a pooled connection", metadata: ["wave.error": "\(error)"])
                break
            }
        }
    }

    /// Closes idle connections and fails waiters; connections in use close when returned.
    func shutdown() async {
        let (idle, waiters) = self.state.withLock { state in
            state.shutDown = true
            let idle = state.idle.map(\.connection)
            state.open -= idle.count
            state.idle = []
            let waiters = Array(state.waiters)
            state.waiters = []
            return (idle, waiters)
        }
        for waiter in waiters {
            waiter.continuation.resume(throwing: RedisClientError(.clientShutdown, "the Redis client was shut down"))
        }
        for connection in idle { await connection.close() }
    }
}
