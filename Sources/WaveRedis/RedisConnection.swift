import Logging
import NIOCore
import NIOPosix
import NIOSSL
import RESP
import Synchronization

/// One connection to a Redis server, with pipelining.
///
/// Any number of tasks may send on a connection at once: requests are written in order and
/// replies are matched to them first-in first-out. One deadline timer per connection enforces
/// ``RedisConfiguration/commandTimeout``; when it fires, every request in flight fails with
/// ``RedisClientError/Code/timeout`` and the connection closes. Cancelling a task fails its own
/// request at once (its reply is read and discarded later); cancelling a blocking command closes
/// the connection.
///
/// Most code uses ``RedisClient``, which pools connections; use a connection directly for
/// consumers that own one (blocking reads) and for benchmarks.
public final class RedisConnection: Sendable {
    /// The underlying channel.
    public let channel: any Channel
    /// The event loop the connection's I/O runs on.
    public var eventLoop: any EventLoop { self.channel.eventLoop }
    /// What the server said about itself on connect.
    public var hello: RedisHello { self.helloBox.withLock { $0 } }
    /// The configuration the connection was made with.
    public let configuration: RedisConfiguration

    let handler: NIOLoopBound<RedisChannelHandler>
    private let helloBox: Mutex<RedisHello>
    private let nextRequestID = Atomic<UInt64>(1)
    private let allocator: ByteBufferAllocator
    let logger: Logger

    init(channel: any Channel, handler: NIOLoopBound<RedisChannelHandler>, configuration: RedisConfiguration, logger: Logger) {
        self.channel = channel
        self.handler = handler
        self.configuration = configuration
        self.helloBox = Mutex(RedisHello(protocolVersion: 2, serverVersion: "unknown"))
        self.allocator = channel.allocator
        self.logger = logger
    }

    /// Opens a connection and performs the handshake: `HELLO 3` with `AUTH` and `SETNAME`
    /// (falling back to RESP2 with `AUTH` and `CLIENT SETNAME` when the server refuses it), then
    /// `SELECT` when a database other than 0 is configured.
    ///
    /// - Parameters:
    ///   - configuration: where and how to connect.
    ///   - eventLoop: the event loop for the connection's I/O.
    ///   - tlsContext: a TLS context for `rediss://` (made once per client; see
    ///     ``makeTLSContext(_:)``). Created on the fly when `nil` and TLS is configured.
    ///   - logger: where connection events are logged.
    ///   - onPush: receives push frames (pub/sub messages and confirmations), on the event loop.
    /// - Throws: ``RedisClientError`` (`connectionFailed`, `tls`, `authentication`, `timeout`).
    public static func connect(
        configuration: RedisConfiguration,
        eventLoop: any EventLoop,
        tlsContext: NIOSSLContext? = nil,
        logger: Logger,
        onPush: (@Sendable (RESPToken) -> Void)? = nil
    ) async throws -> RedisConnection {
        var sslContext = tlsContext
        if sslContext == nil, let tls = configuration.tls {
            sslContext = try Self.makeTLSContext(tls)
        }
        let serverName = configuration.tls.flatMap { $0.serverName ?? (Self.isIPAddress(configuration.host) ? nil : configuration.host) }
        let limits = configuration.decoderLimits
        let resp3 = configuration.preferRESP3
        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(TimeAmount(configuration.connectTimeout))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { [sslContext] channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    if let sslContext {
                        try sync.addHandler(NIOSSLClientHandler(context: sslContext, serverHostname: serverName))
                    }
                    let handler = RedisChannelHandler(eventLoop: channel.eventLoop, resp3: resp3, limits: limits, logger: logger)
                    handler.onPush = onPush
                    try sync.addHandler(handler)
                }
            }
        let channel: any Channel
        do {
            channel = try await bootstrap.connect(host: configuration.host, port: configuration.port).get()
        } catch {
            throw RedisClientError(
                .connectionFailed,
                "cannot connect to \(configuration.redactedURL)",
                underlying: error
            )
        }
        let handler = try await channel.eventLoop.submit {
            NIOLoopBound(try channel.pipeline.syncOperations.handler(type: RedisChannelHandler.self), eventLoop: channel.eventLoop)
        }.get()
        let connection = RedisConnection(channel: channel, handler: handler, configuration: configuration, logger: logger)
        do {
            try await connection.handshake()
        } catch {
            try? await channel.close()
            if let error = error as? RedisClientError, error.code == .connectionClosed, configuration.tls != nil {
                throw RedisClientError(.tls, "the TLS handshake with \(configuration.redactedURL) failed", underlying: error.underlying ?? error)
            }
            throw RedisClientError.from(error)
        }
        return connection
    }

    /// Whether the connection is open.
    public var isActive: Bool { self.channel.isActive }

    /// Completes when the connection has closed.
    public var closeFuture: EventLoopFuture<Void> { self.channel.closeFuture }

    /// Closes the connection; requests in flight fail with ``RedisClientError/Code/connectionClosed``.
    public func close() async {
        try? await self.channel.close()
    }

    // MARK: Sending

    /// Sends one command and waits for its reply.
    /// - Throws: ``RedisClientError``: `server` for an error reply, `timeout`, `connectionClosed`,
    ///   `cancelled`, `unexpectedResponse` when the reply has the wrong shape.
    public func send<Command: RedisCommand>(_ command: Command) async throws -> Command.Response {
        var encoder = RESPCommandEncoder(allocator: self.allocator)
        encoder.command { command.encode(into: &$0) }
        let token = try await self.submit(encoder.buffer, blocking: command.blockingTimeout)
        return try command.decodeReply(token)
    }

    /// Sends one command and returns its reply token as it came, error replies included.
    public func sendRaw<Command: RedisCommand>(_ command: Command) async throws -> RESPToken {
        var encoder = RESPCommandEncoder(allocator: self.allocator)
        encoder.command { command.encode(into: &$0) }
        return try await self.submit(encoder.buffer, blocking: command.blockingTimeout)
    }

    func setHello(_ hello: RedisHello) {
        self.helloBox.withLock { $0 = hello }
    }

    /// Sends several commands in one write and returns every reply in order, error replies
    /// included (as tokens; see ``RESPToken/errorMessage``).
    /// - Throws: ``RedisClientError`` when the connection fails; nothing is retried.
    public func pipeline(_ commands: [any RedisCommand]) async throws -> [RESPToken] {
        guard !commands.isEmpty else { return [] }
        let (bytes, blocking) = self.encode(commands)
        return try await self.submit(bytes, expected: commands.count, blocking: blocking)
    }

    /// Encodes commands into one buffer; the longest blocking time among them, if any.
    private func encode<Commands: Collection>(_ commands: Commands) -> (ByteBuffer, Duration?) where Commands.Element: RedisCommand {
        var encoder = RESPCommandEncoder(allocator: self.allocator)
        var blocking: Duration? = nil
        for command in commands { Self.append(command, to: &encoder, blocking: &blocking) }
        return (encoder.buffer, blocking)
    }

    private func encode(_ commands: [any RedisCommand]) -> (ByteBuffer, Duration?) {
        var encoder = RESPCommandEncoder(allocator: self.allocator)
        var blocking: Duration? = nil
        for command in commands { Self.append(command, to: &encoder, blocking: &blocking) }
        return (encoder.buffer, blocking)
    }

    private static func append(_ command: some RedisCommand, to encoder: inout RESPCommandEncoder, blocking: inout Duration?) {
        encoder.command { command.encode(into: &$0) }
        if let b = command.blockingTimeout { blocking = max(blocking ?? .zero, b) }
    }

    /// Sends the same kind of command many times in one write (for example a batch of `XADD`),
    /// decoding each reply; an error reply becomes a failed `Result`.
    public func pipeline<Command: RedisCommand>(batch commands: [Command]) async throws -> [Result<Command.Response, RedisClientError>] {
        guard !commands.isEmpty else { return [] }
        let (bytes, blocking) = self.encode(commands)
        let tokens = try await self.submit(bytes, expected: commands.count, blocking: blocking)
        var results: [Result<Command.Response, RedisClientError>] = []
        results.reserveCapacity(commands.count)
        for (command, token) in zip(commands, tokens) {
            results.append(Result { () throws(RedisClientError) in try command.decodeReply(token) })
        }
        return results
    }

    /// Sends pre-encoded commands and collects `expected` replies. The building block of
    /// pipelines and benchmarks.
    public func submit(encoded bytes: ByteBuffer, expected: Int) async throws -> [RESPToken] {
        try await self.submit(bytes, expected: expected, blocking: nil)
    }

    /// Sends (P)SUBSCRIBE or (P)UNSUBSCRIBE; completes when every channel is confirmed.
    func submitSubscription(_ arguments: [String], confirmations: Int) async throws {
        var encoder = RESPCommandEncoder(allocator: self.allocator)
        encoder.command { $0.append(contentsOf: arguments) }
        _ = try await self.submit(encoder.buffer, expected: confirmations, blocking: nil, subscription: true)
    }

    func makeRequestID() -> UInt64 {
        self.nextRequestID.add(1, ordering: .relaxed).oldValue
    }

    private func deadline(blocking: Duration?) -> NIODeadline {
        var timeout = self.configuration.commandTimeout
        if let blocking { timeout += blocking }
        return self.eventLoop.now + TimeAmount(timeout)
    }

    func submit(_ bytes: ByteBuffer, blocking: Duration?) async throws -> RESPToken {
        try Task.checkCancellationAsRedisError()
        let promise = self.eventLoop.makePromise(of: RESPToken.self)
        let id = self.makeRequestID()
        let deadline = self.deadline(blocking: blocking)
        let isBlocking = blocking != nil
        if self.eventLoop.inEventLoop {
            self.handler.value.enqueue(bytes, sink: .single(promise), expected: 1, id: id, deadline: deadline, blocking: isBlocking)
        } else {
            self.eventLoop.execute {
                self.handler.value.enqueue(bytes, sink: .single(promise), expected: 1, id: id, deadline: deadline, blocking: isBlocking)
            }
        }
        return try await self.await(promise.futureResult, id: id)
    }

    func submit(_ bytes: ByteBuffer, expected: Int, blocking: Duration?, subscription: Bool = false) async throws -> [RESPToken] {
        try Task.checkCancellationAsRedisError()
        let promise = self.eventLoop.makePromise(of: [RESPToken].self)
        let id = self.makeRequestID()
        let deadline = self.deadline(blocking: blocking)
        let isBlocking = blocking != nil
        let enqueue: @Sendable () -> Void = {
            self.handler.value.enqueue(
                bytes, sink: .multiple(promise), expected: expected, id: id, deadline: deadline,
                blocking: isBlocking, subscription: subscription
            )
        }
        if self.eventLoop.inEventLoop { enqueue() } else { self.eventLoop.execute(enqueue) }
        return try await self.await(promise.futureResult, id: id)
    }

    private func await<Value: Sendable>(_ future: EventLoopFuture<Value>, id: UInt64) async throws -> Value {
        do {
            return try await withTaskCancellationHandler {
                try await future.get()
            } onCancel: {
                self.eventLoop.execute { self.handler.value.cancel(id: id) }
            }
        } catch {
            throw RedisClientError.from(error)
        }
    }

    // MARK: TLS

    /// Builds a TLS context for `rediss://`: certificate verification on unless switched off,
    /// trusting the configured CA file or else the system's roots.
    /// - Throws: ``RedisClientError`` with code `tls` when the CA file cannot be loaded.
    public static func makeTLSContext(_ tls: RedisConfiguration.TLS) throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.certificateVerification = tls.verifyCertificates ? .fullVerification : .none
        if let caFile = tls.caFile {
            configuration.trustRoots = .file(caFile)
        }
        do {
            return try NIOSSLContext(configuration: configuration)
        } catch {
            throw RedisClientError(.tls, "cannot set up TLS (CA file \(tls.caFile ?? "system roots"))", underlying: error)
        }
    }

    static func isIPAddress(_ host: String) -> Bool {
        (try? SocketAddress(ipAddress: host, port: 0)) != nil
    }
}

extension Task where Success == Never, Failure == Never {
    static func checkCancellationAsRedisError() throws {
        if Task.isCancelled { throw RedisClientError(.cancelled, "the request was cancelled") }
    }
}
