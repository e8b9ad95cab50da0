import Logging
import NIOCore
import NIOEmbedded
import RESP
import Testing
import WaveTesting

@testable import WaveRedis

/// A connection over an `NIOAsyncTestingChannel`: the test reads what the client writes and
/// answers with bytes of its choosing.
struct WireHarness {
    let channel: NIOAsyncTestingChannel
    let connection: RedisConnection

    init(configuration: RedisConfiguration = RedisConfiguration(), resp3: Bool = true) async throws {
        let channel = NIOAsyncTestingChannel()
        let logger = Logger(label: "wire-test")
        let handler = try await channel.testingEventLoop.executeInContext {
            let handler = RedisChannelHandler(eventLoop: channel.eventLoop, resp3: resp3, logger: logger)
            try channel.pipeline.syncOperations.addHandler(handler)
            return NIOLoopBound(handler, eventLoop: channel.eventLoop)
        }
        try await channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 6379))
        self.channel = channel
        self.connection = RedisConnection(channel: channel, handler: handler, configuration: configuration, logger: logger)
    }

    /// The next bytes the client wrote.
    func written() async throws -> String {
        String(buffer: try await self.channel.waitForOutboundWrite(as: ByteBuffer.self))
    }

    /// Sends bytes to the client as if from the server.
    func reply(_ text: String) async throws {
        try await self.channel.writeInbound(ByteBuffer(string: text))
    }
}

/// RESP for a command given as its arguments, written independently of the client's encoder.
func resp(_ arguments: [String]) -> String {
    "*\(arguments.count)\r\n" + arguments.map { "$\($0.utf8.count)\r\n\($0)\r\n" }.joined()
}

@Suite("Wire: the exact bytes of each command")
struct WireTests {
    struct Case: Sendable, CustomTestStringConvertible {
        let command: any RedisCommand
        let arguments: [String]
        let reply: String
        var testDescription: String { self.arguments.prefix(3).joined(separator: " ") }
    }

    static let cases: [Case] = [
        Case(command: PingCommand(), arguments: ["PING"], reply: "+PONG\r\n"),
        Case(command: PingCommand(message: "hi"), arguments: ["PING", "hi"], reply: "$2\r\nhi\r\n"),
        Case(
            command: HelloCommand(protocolVersion: 3, authentication: .init(username: "u", password: "p"), clientName: "wave"),
            arguments: ["HELLO", "3", "AUTH", "u", "p", "SETNAME", "wave"], reply: "%1\r\n+proto\r\n:3\r\n"),
        Case(command: AuthCommand(.init(password: "p")), arguments: ["AUTH", "p"], reply: "+OK\r\n"),
        Case(command: AuthCommand(.init(username: "u", password: "p")), arguments: ["AUTH", "u", "p"], reply: "+OK\r\n"),
        Case(command: SelectCommand(database: 3), arguments: ["SELECT", "3"], reply: "+OK\r\n"),
        Case(command: ClientSetNameCommand(name: "wave"), arguments: ["CLIENT", "SETNAME", "wave"], reply: "+OK\r\n"),
        Case(command: InfoCommand(section: "server"), arguments: ["INFO", "server"], reply: "$20\r\nredis_version:7.0.15\r\n"),
        Case(command: GetCommand("k"), arguments: ["GET", "k"], reply: "_\r\n"),
        Case(
            command: SetCommand("k", value: "v", condition: .ifNotExists, expiration: .milliseconds(1500)),
            arguments: ["SET", "k", "v", "NX", "PX", "1500"], reply: "+OK\r\n"),
        Case(command: SetCommand("k", value: "v", expiration: .seconds(9)), arguments: ["SET", "k", "v", "EX", "9"], reply: "+OK\r\n"),
        Case(command: DelCommand("a", "b"), arguments: ["DEL", "a", "b"], reply: ":2\r\n"),
        Case(command: ExpireCommand("k", seconds: 60), arguments: ["EXPIRE", "k", "60"], reply: ":1\r\n"),
        Case(command: ExistsCommand("k"), arguments: ["EXISTS", "k"], reply: ":0\r\n"),
        Case(
            command: XAddCommand("s", fields: [("event_type", "gate.passed"), ("payload", "{}")], trim: .maxLength(10000, approximate: true)),
            arguments: ["XADD", "s", "MAXLEN", "~", "10000", "*", "event_type", "gate.passed", "payload", "{}"], reply: "$3\r\n1-0\r\n"),
        Case(command: XAddCommand("s", fields: [("f", "v")], noMakeStream: true), arguments: ["XADD", "s", "NOMKSTREAM", "*", "f", "v"], reply: "_\r\n"),
        Case(
            command: XReadCommand(streams: [("a", "0"), ("b", "$")], count: 5, block: .milliseconds(250)),
            arguments: ["XREAD", "COUNT", "5", "BLOCK", "250", "STREAMS", "a", "b", "0", "$"], reply: "_\r\n"),
        Case(
            command: XReadGroupCommand(group: "g", consumer: "c", streams: [("a", ">"), ("b", "0")], count: 128, block: .seconds(2)),
            arguments: ["XREADGROUP", "GROUP", "g", "c", "COUNT", "128", "BLOCK", "2000", "STREAMS", "a", "b", ">", "0"],
            reply: "%1\r\n$1\r\na\r\n*1\r\n*2\r\n$3\r\n1-1\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n"),
        Case(command: XAckCommand("s", group: "g", ids: ["1-1", "1-2"]), arguments: ["XACK", "s", "g", "1-1", "1-2"], reply: ":2\r\n"),
        Case(
            command: XGroupCreateCommand("s", group: "g", startID: "1700000000000-0"),
            arguments: ["XGROUP", "CREATE", "s", "g", "1700000000000-0", "MKSTREAM"], reply: "+OK\r\n"),
        Case(command: XGroupDestroyCommand("s", group: "g"), arguments: ["XGROUP", "DESTROY", "s", "g"], reply: ":1\r\n"),
        Case(command: XGroupCreateConsumerCommand("s", group: "g", consumer: "c"), arguments: ["XGROUP", "CREATECONSUMER", "s", "g", "c"], reply: ":1\r\n"),
        Case(command: XGroupDelConsumerCommand("s", group: "g", consumer: "c"), arguments: ["XGROUP", "DELCONSUMER", "s", "g", "c"], reply: ":0\r\n"),
        Case(
            command: XAutoClaimCommand("s", group: "g", consumer: "c", minIdle: .seconds(30), start: "0-0", count: 100),
            arguments: ["XAUTOCLAIM", "s", "g", "c", "30000", "0-0", "COUNT", "100"], reply: "*3\r\n$3\r\n0-0\r\n*0\r\n*0\r\n"),
        Case(
            command: XClaimCommand("s", group: "g", consumer: "c", ids: ["1-1"], justID: true),
            arguments: ["XCLAIM", "s", "g", "c", "0", "1-1", "JUSTID"], reply: "*1\r\n$3\r\n1-1\r\n"),
        Case(command: XPendingSummaryCommand("s", group: "g"), arguments: ["XPENDING", "s", "g"], reply: "*4\r\n:0\r\n_\r\n_\r\n_\r\n"),
        Case(
            command: XPendingCommand("s", group: "g", minIdle: .seconds(1), count: 10, consumer: "c"),
            arguments: ["XPENDING", "s", "g", "IDLE", "1000", "-", "+", "10", "c"], reply: "*0\r\n"),
        Case(command: XInfoGroupsCommand("s"), arguments: ["XINFO", "GROUPS", "s"], reply: "*0\r\n"),
        Case(command: XInfoConsumersCommand("s", group: "g"), arguments: ["XINFO", "CONSUMERS", "s", "g"], reply: "*0\r\n"),
        Case(command: XRangeCommand("s", count: 2), arguments: ["XRANGE", "s", "-", "+", "COUNT", "2"], reply: "*0\r\n"),
        Case(
            command: XRangeCommand("s", start: "5-0", end: "+", count: 2, reverse: true), arguments: ["XREVRANGE", "s", "+", "5-0", "COUNT", "2"],
            reply: "*0\r\n"),
        Case(command: XLenCommand("s"), arguments: ["XLEN", "s"], reply: ":0\r\n"),
        Case(command: XTrimCommand("s", trim: .minID("5-0", approximate: false)), arguments: ["XTRIM", "s", "MINID", "5-0"], reply: ":0\r\n"),
        Case(command: XDelCommand("s", ids: ["1-1"]), arguments: ["XDEL", "s", "1-1"], reply: ":1\r\n"),
        Case(command: PublishCommand(channel: "wave:emergency", message: "{}"), arguments: ["PUBLISH", "wave:emergency", "{}"], reply: ":0\r\n"),
        Case(command: EvalCommand(script: "return 1", keys: ["k"], arguments: ["a"]), arguments: ["EVAL", "return 1", "1", "k", "a"], reply: ":1\r\n"),
        Case(command: EvalShaCommand(sha1: "abc", keys: [], arguments: []), arguments: ["EVALSHA", "abc", "0"], reply: ":1\r\n"),
        Case(command: TimeCommand(), arguments: ["TIME"], reply: "*2\r\n$10\r\n1700000000\r\n$6\r\n123456\r\n"),
    ]

    @Test("each command writes exactly its RESP bytes and decodes its reply", arguments: cases)
    func exactBytes(_ testCase: Case) async throws {
        let harness = try await WireHarness()
        async let reply = harness.connection.send(testCase.command)
        #expect(try await harness.written() == resp(testCase.arguments))
        try await harness.reply(testCase.reply)
        _ = try await reply
    }

    @Test("pipelined requests go out in order and replies come back matched")
    func pipelinedMatching() async throws {
        let harness = try await WireHarness()
        async let first = harness.connection.send(GetCommand("a"))
        #expect(try await harness.written() == resp(["GET", "a"]))
        async let second = harness.connection.send(GetCommand("b"))
        #expect(try await harness.written() == resp(["GET", "b"]))
        try await harness.reply("$1\r\nA\r\n$1\r\nB\r\n")
        #expect(try await first == "A")
        #expect(try await second == "B")
    }

    @Test("a server error reply becomes a typed error and the connection stays usable")
    func serverError() async throws {
        let harness = try await WireHarness()
        async let failing = harness.connection.send(GetCommand("k"))
        _ = try await harness.written()
        try await harness.reply("-WRONGTYPE Operation against a key holding the wrong kind of value\r\n")
        do {
            _ = try await failing
            Issue.record("no error")
        } catch let error as RedisClientError {
            #expect(error.code == .server)
            #expect(error.serverErrorPrefix == "WRONGTYPE")
        }
        async let next = harness.connection.send(PingCommand())
        _ = try await harness.written()
        try await harness.reply("+PONG\r\n")
        #expect(try await next == "PONG")
    }

    @Test("the deadline fails everything in flight and closes the connection")
    func deadline() async throws {
        var configuration = RedisConfiguration()
        configuration.commandTimeout = .seconds(1)
        let harness = try await WireHarness(configuration: configuration)
        let connection = harness.connection
        let first = Task { try await connection.send(PingCommand()) }
        _ = try await harness.written()
        let second = Task { try await connection.send(PingCommand()) }
        _ = try await harness.written()
        await harness.channel.testingEventLoop.advanceTime(by: .seconds(2))
        for result in [await first.result, await second.result] {
            guard case .failure(let error as RedisClientError) = result else {
                Issue.record("expected a timeout, got \(result)")
                continue
            }
            #expect(error.code == .timeout)
        }
        #expect(!harness.connection.isActive)
    }

    @Test("malformed bytes from the server fail the request with a protocol error and close")
    func malformedReply() async throws {
        let harness = try await WireHarness()
        async let reply = harness.connection.send(PingCommand())
        _ = try await harness.written()
        try? await harness.reply("?garbage\r\n")
        do {
            _ = try await reply
            Issue.record("no error")
        } catch let error as RedisClientError {
            #expect(error.code == .protocolViolation)
        }
        #expect(!harness.connection.isActive)
    }

    @Test("handshake falls back to RESP2 when HELLO is refused: AUTH, CLIENT SETNAME, INFO, SELECT")
    func resp2Fallback() async throws {
        var configuration = try RedisConfiguration(url: "redis://wave:pw@127.0.0.1:6379/2")
        configuration.clientName = "wave-test"
        let harness = try await WireHarness(configuration: configuration)
        async let done: Void = harness.connection.handshake()
        #expect(try await harness.written() == resp(["HELLO", "3", "AUTH", "wave", "pw", "SETNAME", "wave-test"]))
        try await harness.reply("-ERR unknown command 'HELLO', with args beginning with: '3'\r\n")
        #expect(try await harness.written() == resp(["AUTH", "wave", "pw"]))
        try await harness.reply("+OK\r\n")
        #expect(try await harness.written() == resp(["CLIENT", "SETNAME", "wave-test"]))
        try await harness.reply("+OK\r\n")
        #expect(try await harness.written() == resp(["INFO", "server"]))
        let info = "# Server\r\nredis_version:6.0.16\r\nx:y\r\n"
        try await harness.reply("$\(info.utf8.count)\r\n\(info)\r\n")
        #expect(try await harness.written() == resp(["SELECT", "2"]))
        try await harness.reply("+OK\r\n")
        try await done
        #expect(harness.connection.hello == RedisHello(protocolVersion: 2, serverVersion: "6.0.16"))
    }

    @Test("a refused password fails the handshake with an authentication error, not a fallback")
    func wrongPassword() async throws {
        let harness = try await WireHarness(configuration: try RedisConfiguration(url: "redis://:bad@127.0.0.1"))
        async let done: Void = harness.connection.handshake()
        _ = try await harness.written()
        try await harness.reply("-WRONGPASS invalid username-password pair or user is disabled.\r\n")
        do {
            try await done
            Issue.record("no error")
        } catch let error as RedisClientError {
            #expect(error.code == .authentication)
        }
    }

    @Test("cancelling a task fails its request at once; the late reply does not shift later ones")
    func cancellation() async throws {
        let harness = try await WireHarness()
        let task = Task { try await harness.connection.send(GetCommand("slow")) }
        _ = try await harness.written()
        task.cancel()
        let result = await task.result
        guard case .failure(let error as RedisClientError) = result else {
            Issue.record("expected cancellation, got \(result)")
            return
        }
        #expect(error.code == .cancelled)
        async let next = harness.connection.send(GetCommand("next"))
        _ = try await harness.written()
        try await harness.reply("$4\r\nlate\r\n$4\r\nmine\r\n")
        #expect(try await next == "mine")
    }
}
