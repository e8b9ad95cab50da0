import Logging
import NIOCore
import RESP

/// How a request is completed: one reply, or several collected in order.
enum ResponseSink {
    case single(EventLoopPromise<RESPToken>)
    case multiple(EventLoopPromise<[RESPToken]>)

    func succeed(_ tokens: [RESPToken]) {
        switch self {
        case .single(let promise): promise.succeed(tokens[0])
        case .multiple(let promise): promise.succeed(tokens)
        }
    }

    func fail(_ error: any Error) {
        switch self {
        case .single(let promise): promise.fail(error)
        case .multiple(let promise): promise.fail(error)
        }
    }
}

/// The NIO end of a connection: writes requests, decodes replies (the RESP decoder runs inline,
/// without a separate pipeline stage per token), hands them to the state machine and performs
/// its actions. Runs only on the channel's event loop.
final class RedisChannelHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var decoder: RESPTokenDecoder
    /// Bytes received but not yet decoded (part of a value).
    private var cumulation: ByteBuffer?

    private var machine: RedisConnectionStateMachine<ResponseSink>
    private var context: ChannelHandlerContext?
    private var timer: Scheduled<Void>?
    private var timerDeadline: NIODeadline?
    private let eventLoop: any EventLoop
    private let logger: Logger
    /// Receives push frames (pub/sub messages, subscription confirmations, invalidations).
    var onPush: (@Sendable (RESPToken) -> Void)?

    init(eventLoop: any EventLoop, resp3: Bool, limits: RESPDecoderLimits = .default, logger: Logger) {
        self.decoder = RESPTokenDecoder(limits: limits)
        self.eventLoop = eventLoop
        self.machine = RedisConnectionStateMachine(resp3: resp3)
        self.logger = logger
    }

    /// Switches the protocol after the handshake (only while nothing is in flight).
    func setProtocol(resp3: Bool) {
        precondition(self.machine.inFlight == 0)
        self.machine = RedisConnectionStateMachine(resp3: resp3)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.failAll(RedisClientError(.connectionClosed, "the connection handler was removed"))
        self.context = nil
    }

    // MARK: Requests

    func enqueue(
        _ bytes: ByteBuffer,
        sink: ResponseSink,
        expected: Int,
        id: UInt64,
        deadline: NIODeadline,
        blocking: Bool = false,
        subscription: Bool = false
    ) {
        self.eventLoop.preconditionInEventLoop()
        let request = RedisConnectionStateMachine<ResponseSink>.Request(
            id: id, sink: sink, expected: expected, deadline: deadline, blocking: blocking, subscription: subscription
        )
        switch self.machine.send(request) {
        case .fail(let sink, let error):
            sink.fail(error)
        case .write:
            guard let context = self.context else {
                self.failAll(RedisClientError(.connectionClosed, "the connection is closed"))
                return
            }
            context.writeAndFlush(self.wrapOutboundOut(bytes), promise: nil)
            self.armTimer(for: deadline)
        }
    }

    func cancel(id: UInt64) {
        switch self.machine.cancel(id: id) {
        case .none:
            break
        case .fail(let sink):
            sink.fail(RedisClientError(.cancelled, "the request was cancelled"))
        case .closeWithError(let error, let sinks):
            self.closeChannel(error, sinks)
        }
    }

    // MARK: Inbound

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = self.unwrapInboundIn(data)
        if var pending = self.cumulation {
            self.cumulation = nil
            pending.writeBuffer(&buffer)
            buffer = pending
        }
        while true {
            let token: RESPToken?
            do {
                token = try self.decoder.decode(buffer: &buffer)
            } catch {
                self.errorCaught(context: context, error: error)
                return
            }
            guard let token else { break }
            self.receive(token)
            guard case .active = self.machine.state else { return }
        }
        if buffer.readableBytes > 0 {
            if buffer.readerIndex > 4096 { buffer.discardReadBytes() }
            self.cumulation = buffer
        }
    }

    private func receive(_ token: RESPToken) {
        switch self.machine.receive(token) {
        case .none:
            break
        case .succeed(let sink, let tokens):
            sink.succeed(tokens)
        case .push(let token):
            self.deliverPush(token)
        case .pushAndSucceed(let token, let sink, let tokens):
            self.deliverPush(token)
            sink?.succeed(tokens)
        case .closeWithError(let error, let sinks):
            self.closeChannel(error, sinks)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.failAll(RedisClientError(.connectionClosed, "the server closed the connection"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        let wrapped: RedisClientError
        if let parsing = error as? RESPParsingError {
            wrapped = RedisClientError(.protocolViolation, "the server sent invalid RESP: \(parsing)", underlying: parsing)
        } else {
            wrapped = RedisClientError(.connectionClosed, "the connection failed: \(error)", underlying: error)
        }
        self.logger.debug("Redis connection error", metadata: ["wave.error": "\(wrapped)"])
        self.closeChannel(wrapped, self.machine.close(wrapped))
    }

    // MARK: Helpers

    private func deliverPush(_ token: RESPToken) {
        if let onPush {
            onPush(token)
        } else {
            self.logger.debug("Redis push frame with no subscriber", metadata: ["wave.push": "\(token.description.prefix(80))"])
        }
    }

    private func armTimer(for deadline: NIODeadline) {
        if let current = self.timerDeadline, current <= deadline { return }
        self.timer?.cancel()
        self.timerDeadline = deadline
        self.timer = self.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) { [self] in
            self.timerDeadline = nil
            self.timer = nil
            switch self.machine.timerFired(now: self.eventLoop.now) {
            case .none:
                break
            case .reschedule(let next):
                self.armTimer(for: next)
            case .closeWithError(let error, let sinks):
                self.closeChannel(error, sinks)
            }
        }
    }

    private func failAll(_ error: RedisClientError) {
        for sink in self.machine.close(error) { sink.fail(error) }
        self.timer?.cancel()
        self.timer = nil
        self.timerDeadline = nil
    }

    private func closeChannel(_ error: RedisClientError, _ sinks: [ResponseSink]) {
        for sink in sinks { sink.fail(error) }
        self.timer?.cancel()
        self.timer = nil
        self.timerDeadline = nil
        self.context?.close(promise: nil)
    }
}
