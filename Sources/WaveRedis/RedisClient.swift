import Logging
import NIOCore
import NIOPosix
import NIOSSL
import RESP
import ServiceLifecycle
import Synchronization

/// A Redis client: a connection pool for ordinary commands, dedicated connections for blocking
/// reads and subscriptions, reconnection with backoff, and a circuit breaker.
///
/// The client is a `Service`: run it in a `ServiceGroup` (or call ``run()`` in a task) for keep-
/// alive, idle-connection reaping and automatic recovery after the server comes back. Commands
/// work before `run()` starts; they open connections on demand.
///
/// ```swift
/// let client = try RedisClient(configuration: RedisConfiguration(url: "redis://127.0.0.1:6379"), logger: logger)
/// let id = try await client.send(XAddCommand("wave:signals:demo", fields: [("event_type", "gate.passed")]))
/// ```
///
/// - Important: Errors are ``RedisClientError``. While the breaker is open, requests fail at once
///   with ``RedisClientError/Code/circuitOpen`` instead of waiting for timeouts.
public final class RedisClient: Service, Sendable {
    /// The configuration.
    public let configuration: RedisConfiguration
    /// The circuit breaker guarding every request.
    public let breaker: CircuitBreaker
    /// The event loops connections run on.
    public let eventLoopGroup: any EventLoopGroup

    let pool: RedisConnectionPool
    let tlsContext: NIOSSLContext?
    let logger: Logger
    private let blockingIdle = Mutex<[RedisConnection]>([])
    private let serverInfoBox = Mutex<RedisServerInfo?>(nil)
    private let shutDown = Atomic<Bool>(false)

    /// Creates a client. No connection is opened yet.
    /// - Throws: ``RedisClientError`` with code `tls` when the TLS settings cannot be loaded.
    public init(
        configuration: RedisConfiguration,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger
    ) throws {
        self.configuration = configuration
        self.eventLoopGroup = eventLoopGroup
        var logger = logger
        logger[metadataKey: "wave.redis"] = "\(configuration.redactedURL)"
        self.logger = logger
        self.tlsContext = try configuration.tls.map(RedisConnection.makeTLSContext)
        self.breaker = CircuitBreaker(configuration: configuration.circuitBreaker, logger: logger)
        self.pool = RedisConnectionPool(
            configuration: configuration,
            eventLoopGroup: eventLoopGroup,
            tlsContext: self.tlsContext,
            logger: logger
        )
    }

    // MARK: Commands

    /// Sends a command on a pooled connection.
    /// - Throws: ``RedisClientError``.
    public func send<Command: RedisCommand>(_ command: Command) async throws -> Command.Response {
        if command.blockingTimeout != nil { return try await self.blocking(command) }
        return try await self.guarded {
            try await self.pool.withConnection { try await $0.send(command) }
        }
    }

    /// Sends commands in one write on one pooled connection; returns every reply, error replies
    /// included.
    public func pipeline(_ commands: [any RedisCommand]) async throws -> [RESPToken] {
        try await self.guarded {
            try await self.pool.withConnection { try await $0.pipeline(commands) }
        }
    }

    /// Sends a batch of one kind of command in one write; each reply decoded or failed.
    public func pipeline<Command: RedisCommand>(batch commands: [Command]) async throws -> [Result<Command.Response, RedisClientError>] {
        try await self.guarded {
            try await self.pool.withConnection { try await $0.pipeline(batch: commands) }
        }
    }

    /// Runs commands in `MULTI`/`EXEC` on one pooled connection.
    public func transaction(_ commands: [any RedisCommand]) async throws -> [RESPToken] {
        try await self.guarded {
            try await self.pool.withConnection { try await $0.transaction(commands) }
        }
    }

    /// Runs `body` with a pooled connection (for several commands that must share one).
    public func withConnection<Result: Sendable>(_ body: (RedisConnection) async throws -> Result) async throws -> Result {
        try await self.guarded { try await self.pool.withConnection(body) }
    }

    /// Sends a blocking command (`XREADGROUP … BLOCK`, `XREAD … BLOCK`) on a dedicated
    /// connection, so that it never delays other commands. The connection is reused for the
    /// next blocking command when the read ended normally (entries or the server's `BLOCK`
    /// timeout), and discarded when the client-side deadline passed or the task was cancelled.
    public func blocking<Command: RedisCommand>(_ command: Command) async throws -> Command.Response {
        try await self.guarded {
            let connection = try await self.takeBlockingConnection()
            do {
                let result = try await connection.send(command)
                self.returnBlockingConnection(connection)
                return result
            } catch let error as RedisClientError where error.code == .server || error.code == .unexpectedResponse {
                self.returnBlockingConnection(connection)
                throw error
            } catch {
                await connection.close()
                throw error
            }
        }
    }

    /// Runs `body` with a connection of its own, opened for it and closed afterwards (for a
    /// consumer loop that owns a connection).
    /// - Parameter eventLoop: the loop for the connection's I/O; by default the group's next.
    public func withDedicatedConnection<Result: Sendable>(
        on eventLoop: (any EventLoop)? = nil,
        _ body: (RedisConnection) async throws -> Result
    ) async throws -> Result {
        let connection = try await self.guarded { try await self.openConnection(on: eventLoop) }
        do {
            let result = try await body(connection)
            await connection.close()
            return result
        } catch {
            await connection.close()
            throw error
        }
    }

    /// The server's version, protocol and optional features, detected once and remembered.
    public func serverInfo() async throws -> RedisServerInfo {
        if let info = self.serverInfoBox.withLock({ $0 }) { return info }
        let info = try await self.withConnection { try await $0.detectFeatures() }
        self.serverInfoBox.withLock { $0 = info }
        self.logger.info(
            "Redis server \(info.version), RESP\(info.protocolVersion), extras: \(info.features.names.isEmpty ? "none" : info.features.names.joined(separator: ", "))"
        )
        return info
    }

    /// Opens a new connection with this client's settings (not pooled; the caller closes it).
    /// - Parameters:
    ///   - eventLoop: the loop for its I/O; by default the group's next.
    ///   - onPush: called with every push frame (subscriptions).
    public func openConnection(on eventLoop: (any EventLoop)? = nil, onPush: (@Sendable (RESPToken) -> Void)? = nil) async throws -> RedisConnection {
        guard !self.shutDown.load(ordering: .relaxed) else {
            throw RedisClientError(.clientShutdown, "the Redis client was shut down")
        }
        return try await RedisConnection.connect(
            configuration: self.configuration,
            eventLoop: eventLoop ?? self.eventLoopGroup.next(),
            tlsContext: self.tlsContext,
            logger: self.logger,
            onPush: onPush
        )
    }

    // MARK: Breaker

    /// Runs `body` if the breaker allows it and reports the outcome to the breaker. Connection
    /// failures count against the server; error replies and decoding errors do not.
    func guarded<Result: Sendable>(_ body: () async throws -> Result) async throws -> Result {
        let permit = self.breaker.acquire()
        if case .rejected(let until) = permit {
            let wait = max(.zero, until - .now)
            throw RedisClientError(
                .circuitOpen,
                "Redis at \(self.configuration.redactedURL) is unreachable; the circuit breaker is open (next probe in \(wait.wholeMilliseconds) ms)"
            )
        }
        let probe = permit == .probe
        do {
            let result = try await body()
            self.breaker.record(success: true, probe: probe)
            return result
        } catch {
            let error = RedisClientError.from(error)
            if error.isConnectionFailure || error.code == .connectionFailed {
                self.breaker.record(success: false, probe: probe)
            } else if error.code == .cancelled || error.code == .clientShutdown {
                if probe { self.breaker.record(success: false, probe: true) }
            } else {
                self.breaker.record(success: true, probe: probe)
            }
            throw error
        }
    }

    // MARK: Blocking connections

    private func takeBlockingConnection() async throws -> RedisConnection {
        while let connection = self.blockingIdle.withLock({ $0.popLast() }) {
            if connection.isActive { return connection }
        }
        return try await self.openConnection()
    }

    private func returnBlockingConnection(_ connection: RedisConnection) {
        let keep = self.blockingIdle.withLock { idle -> Bool in
            guard !self.shutDown.load(ordering: .relaxed), idle.count < self.configuration.pool.maxConnections else { return false }
            idle.append(connection)
            return true
        }
        if !keep { connection.channel.close(promise: nil) }
    }

    // MARK: Service

    /// Runs maintenance until graceful shutdown or cancellation, then closes every connection:
    /// keep-alive and idle reaping every ``RedisConfiguration/Pool/keepAliveInterval``, and, each
    /// time the breaker opens, a probe after its backoff until the server answers again.
    public func run() async throws {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.maintenanceLoop() }
            group.addTask { await self.recoveryLoop() }
            // Both loops run until graceful shutdown (or cancellation) ends this wait.
            try? await gracefulShutdown()
            self.logger.debug("Redis client shutting down")
            group.cancelAll()
        }
        await self.shutdown()
    }

    /// Closes every connection; later requests fail with ``RedisClientError/Code/clientShutdown``.
    public func shutdown() async {
        guard !self.shutDown.exchange(true, ordering: .relaxed) else { return }
        await self.pool.shutdown()
        let blocking = self.blockingIdle.withLock { idle in
            defer { idle = [] }
            return idle
        }
        for connection in blocking { await connection.close() }
    }

    private func maintenanceLoop() async {
        await self.pool.maintain()
        while !Task.isCancelled {
            // Maintenance on a named, configured interval (keep-alive), not a wait for a state.
            // sleep: interval keepAliveInterval
            do { try await Task.sleep(for: self.configuration.pool.keepAliveInterval) } catch { return }
            if self.breaker.state == .closed { await self.pool.maintain() }
        }
    }

    private func recoveryLoop() async {
        for await transition in self.breaker.transitions() {
            guard transition.to == .open, let reopensAt = self.breaker.reopensAt else { continue }
            // Backoff stored in the breaker (exponential, full jitter), then one probe.
            // sleep: backoff
            do { try await Task.sleep(until: reopensAt, clock: .continuous) } catch { return }
            do {
                _ = try await self.send(PingCommand())
                self.logger.info("Redis is reachable again")
            } catch {
                self.logger.debug("Redis probe failed", metadata: ["wave.error": "\(error)"])
            }
        }
    }
}
