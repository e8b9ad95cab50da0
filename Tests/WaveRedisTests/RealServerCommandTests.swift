import Foundation
import NIOCore
import RESP
import Testing
import WaveTesting

@testable import WaveRedis

@Suite("Real Redis: commands", .enabled(if: TestServers.available(TestServers.plain), "WAVE_TEST_REDIS_URL is not set (run ./scripts/test)"))
struct RealServerCommandTests {
    let client: RedisClient

    init() throws {
        self.client = try TestServers.client(try TestServers.require(TestServers.plain, "WAVE_TEST_REDIS_URL"))
    }

    @Test("connection commands: PING, INFO, TIME, CLIENT SETNAME/GETNAME, SELECT, HELLO, feature detection")
    func connectionCommands() async throws {
        #expect(try await self.client.send(PingCommand()) == "PONG")
        #expect(try await self.client.send(PingCommand(message: "hé")) == "hé")
        let info = try await self.client.send(InfoCommand(section: "server"))
        #expect(info.value(for: "redis_version")?.isEmpty == false)
        let time = try await self.client.send(TimeCommand())
        #expect(abs(time.milliseconds - Int64(Date().timeIntervalSince1970 * 1000)) < 60_000)
        let name = try await self.client.withConnection { connection in
            _ = try await connection.send(ClientSetNameCommand(name: "wave-renamed"))
            let name = try await connection.send(ClientGetNameCommand())
            _ = try await connection.send(ClientSetNameCommand(name: "wave"))
            return name
        }
        #expect(name == "wave-renamed")
        let hello = try await self.client.send(HelloCommand(protocolVersion: 3))
        #expect(try hello.pairs().contains { $0.key.stringValue == "proto" })
        let server = try await self.client.serverInfo()
        #expect(server.protocolVersion == 3)
        #expect(server.version == info.value(for: "redis_version"))
        // Redis 7.0 here: none of the Redis 8 extras. On a newer server the flags follow its version.
        let isEight = (Int(server.version.split(separator: ".").first ?? "0") ?? 0) >= 8
        if !isEight { #expect(server.features == RedisFeatures()) }
        // SELECT through the URL: a key set in db 1 is not visible in db 0.
        let url = try TestServers.require(TestServers.plain, "WAVE_TEST_REDIS_URL")
        let db1 = try TestServers.client(url + "/1")
        let key = TestServers.key()
        #expect(try await db1.send(SetCommand(key, value: "one")))
        #expect(try await self.client.send(GetCommand(key)) == nil)
        #expect(try await db1.send(GetCommand(key)) == "one")
        _ = try await db1.send(DelCommand(key))
        await db1.shutdown()
    }

    @Test("strings and keys: GET, SET NX/PX/EX, DEL, EXISTS, EXPIRE")
    func keys() async throws {
        let key = TestServers.key()
        #expect(try await self.client.send(GetCommand(key)) == nil)
        #expect(try await self.client.send(SetCommand(key, value: "1", condition: .ifNotExists)))
        #expect(try await self.client.send(SetCommand(key, value: "2", condition: .ifNotExists)) == false)
        #expect(try await self.client.send(GetCommand(key)) == "1")
        #expect(try await self.client.send(SetCommand(key, value: "3", condition: .ifExists, expiration: .milliseconds(60_000))))
        #expect((1...60).contains(try await self.client.send(TTLCommand(key))))
        #expect(try await self.client.send(SetCommand(key, value: "4", expiration: .seconds(100))))
        #expect((61...100).contains(try await self.client.send(TTLCommand(key))))
        #expect(try await self.client.send(ExpireCommand(key, seconds: 5)))
        #expect(try await self.client.send(ExpireCommand(key + ":missing", seconds: 5)) == false)
        #expect(try await self.client.send(ExistsCommand(key, key + ":missing")) == 1)
        #expect(try await self.client.send(DelCommand(key, key + ":missing")) == 1)
        #expect(try await self.client.send(ExistsCommand(key)) == 0)
    }

    @Test("streams: XADD (NOMKSTREAM, MAXLEN ~), XLEN, XRANGE, XREVRANGE, XDEL, XTRIM MAXLEN and MINID, XINFO STREAM")
    func streams() async throws {
        let key = TestServers.key()
        #expect(try await self.client.send(XAddCommand(key, fields: [("f", "v")], noMakeStream: true)) == nil)
        var ids: [String] = []
        for i in 0..<20 {
            let id = try #require(try await self.client.send(XAddCommand(key, fields: [("n", "\(i)"), ("payload", "{\"i\":\(i)}")])))
            ids.append(id)
        }
        #expect(try await self.client.send(XLenCommand(key)) == 20)
        let range = try await self.client.send(XRangeCommand(key, count: 3))
        #expect(range.map(\.id) == Array(ids.prefix(3)))
        #expect(range[1]["n"] == "1" && range[1]["payload"] == "{\"i\":1}")
        #expect(range[0].fields.map(\.name) == ["n", "payload"])
        let reverse = try await self.client.send(XRangeCommand(key, count: 2, reverse: true))
        #expect(reverse.map(\.id) == [ids[19], ids[18]])
        #expect(try await self.client.send(XDelCommand(key, ids: [ids[0], "1-1"])) == 1)
        #expect(try await self.client.send(XTrimCommand(key, trim: .minID(ids[5], approximate: false))) == 4)
        #expect(try await self.client.send(XTrimCommand(key, trim: .maxLength(10, approximate: false))) == 5)
        let info = try await self.client.send(XInfoStreamCommand(key))
        #expect(info.length == 10)
        #expect(info.lastGeneratedID == ids[19])
        #expect(info.firstEntry?.id == ids[10])
        #expect(info.entriesAdded == 20)
        // Redis 7.0 records only XDEL here; trimming leaves max-deleted-entry-id alone.
        #expect(info.maxDeletedEntryID == ids[0])
        _ = try await self.client.send(XAddCommand(key, fields: [("f", "v")], trim: .maxLength(5, approximate: true)))
        #expect(try await self.client.send(XLenCommand(key)) >= 5)
        _ = try await self.client.send(DelCommand(key))
    }

    @Test("consumer groups: XGROUP CREATE (BUSYGROUP is success), XREADGROUP, XACK, XPENDING, XCLAIM, XAUTOCLAIM, XINFO, CREATECONSUMER, DELCONSUMER, DESTROY")
    func groups() async throws {
        let key = TestServers.key()
        let other = TestServers.key("groups-other")
        #expect(try await self.client.send(XGroupCreateCommand(key, group: "g", startID: "0")))
        #expect(try await self.client.send(XGroupCreateCommand(key, group: "g", startID: "0")) == false)
        #expect(try await self.client.send(XGroupCreateCommand(other, group: "g", startID: "0")))
        var ids: [String] = []
        for i in 0..<6 { ids.append(try #require(try await self.client.send(XAddCommand(key, fields: [("i", "\(i)")])))) }
        _ = try await self.client.send(XAddCommand(other, fields: [("o", "1")]))

        // Several streams in one read.
        let read = try await self.client.send(XReadGroupCommand(group: "g", consumer: "c1", streams: [(key, ">"), (other, ">")], count: 4))
        #expect(read.entries(of: key).map(\.id) == Array(ids.prefix(4)))
        #expect(read.entries(of: other).count == 1)
        #expect(try await self.client.send(XAckCommand(key, group: "g", ids: [ids[0]])) == 1)
        // Re-reading own pending entries from 0.
        let pendingRead = try await self.client.send(XReadGroupCommand(group: "g", consumer: "c1", streams: [(key, "0")]))
        #expect(pendingRead.entries(of: key).map(\.id) == Array(ids[1..<4]))

        let summary = try await self.client.send(XPendingSummaryCommand(key, group: "g"))
        #expect(summary.count == 3 && summary.smallestID == ids[1] && summary.greatestID == ids[3] && summary.consumers == ["c1": 3])
        let detail = try await self.client.send(XPendingCommand(key, group: "g", count: 10))
        #expect(detail.map(\.id) == Array(ids[1..<4]))
        #expect(detail.allSatisfy { $0.consumer == "c1" && $0.deliveryCount == 2 })

        #expect(try await self.client.send(XGroupCreateConsumerCommand(key, group: "g", consumer: "c2")))
        let claimed = try await self.client.send(XClaimCommand(key, group: "g", consumer: "c2", ids: [ids[1]], justID: true))
        #expect(claimed.ids == [ids[1]] && claimed.entries.isEmpty)
        let claimedFull = try await self.client.send(XClaimCommand(key, group: "g", consumer: "c2", ids: [ids[2]]))
        #expect(claimedFull.entries.first?["i"] == "2")

        // XAUTOCLAIM follows its cursor and reports entries deleted while pending.
        _ = try await self.client.send(XDelCommand(key, ids: [ids[3]]))
        var cursor = "0-0"
        var autoClaimed: [String] = []
        var deleted: [String] = []
        repeat {
            let reply = try await self.client.send(XAutoClaimCommand(key, group: "g", consumer: "c3", minIdle: .zero, start: cursor, count: 1))
            autoClaimed += reply.ids
            deleted += reply.deletedIDs
            cursor = reply.nextCursor
        } while cursor != "0-0"
        #expect(Set(autoClaimed) == [ids[1], ids[2]])
        #expect(deleted == [ids[3]])
        let justIDs = try await self.client.send(XAutoClaimCommand(key, group: "g", consumer: "c1", minIdle: .zero, justID: true))
        #expect(Set(justIDs.ids) == [ids[1], ids[2]])

        let groups = try await self.client.send(XInfoGroupsCommand(key))
        #expect(groups.count == 1)
        #expect(groups[0].name == "g" && groups[0].pending == 2 && groups[0].lastDeliveredID == ids[3])
        #expect(groups[0].entriesRead == 4)
        let consumers = try await self.client.send(XInfoConsumersCommand(key, group: "g"))
        #expect(Set(consumers.map(\.name)) == ["c1", "c2", "c3"])
        #expect(consumers.first(where: { $0.name == "c1" })?.pending == 2)

        #expect(try await self.client.send(XGroupDelConsumerCommand(key, group: "g", consumer: "c1")) == 2)
        #expect(try await self.client.send(XGroupDestroyCommand(key, group: "g")))
        #expect(try await self.client.send(XGroupDestroyCommand(key, group: "g")) == false)
        do {
            _ = try await self.client.send(XReadGroupCommand(group: "g", consumer: "c", streams: [(key, ">")]))
            Issue.record("read from a destroyed group")
        } catch let error as RedisClientError {
            #expect(error.serverErrorPrefix == "NOGROUP")
        }
        _ = try await self.client.send(DelCommand(key, other))
    }

    @Test("XREAD and blocking XREADGROUP return entries; a server-side BLOCK timeout returns nothing")
    func blockingReads() async throws {
        let key = TestServers.key()
        _ = try await self.client.send(XGroupCreateCommand(key, group: "g", startID: "$"))
        let empty = try await self.client.send(XReadGroupCommand(group: "g", consumer: "c", streams: [(key, ">")], block: .milliseconds(50)))
        #expect(empty.allEntries.isEmpty)
        let id = try #require(try await self.client.send(XAddCommand(key, fields: [("a", "b")])))
        let read = try await self.client.send(XReadCommand(streams: [(key, "0")], count: 10, block: .milliseconds(100)))
        #expect(read.entries(of: key).map(\.id) == [id])
        let group = try await self.client.send(XReadGroupCommand(group: "g", consumer: "c", streams: [(key, ">")], block: .seconds(1)))
        #expect(group.entries(of: key).first?["a"] == "b")
        _ = try await self.client.send(DelCommand(key))
    }

    @Test("MULTI/EXEC, EVAL, SCRIPT LOAD and EVALSHA (NOSCRIPT is a server error)")
    func transactionsAndScripts() async throws {
        let key = TestServers.key()
        let results = try await self.client.transaction([
            SetCommand(key, value: "10"), RawCommand("INCRBY", key, "5"), GetCommand(key),
        ])
        #expect(results.count == 3)
        #expect(try results[1].decode(as: Int.self) == 15)
        #expect(results[2].stringValue == "15")
        let sum = try await self.client.send(EvalCommand(script: "return redis.call('INCRBY', KEYS[1], ARGV[1])", keys: [key], arguments: ["7"]))
        #expect(try sum.decode(as: Int.self) == 22)
        let script = "return {KEYS[1], ARGV[1]}"
        do {
            _ = try await self.client.send(EvalShaCommand(sha1: "0000000000000000000000000000000000000000"))
            Issue.record("EVALSHA of an unknown script succeeded")
        } catch let error as RedisClientError {
            #expect(error.serverErrorPrefix == "NOSCRIPT")
        }
        let sha = try await self.client.send(ScriptLoadCommand(script: script))
        let echoed = try await self.client.send(EvalShaCommand(sha1: sha, keys: ["k"], arguments: ["v"]))
        #expect(try echoed.decode(as: [String].self) == ["k", "v"])
        _ = try await self.client.send(DelCommand(key))
    }

    @Test("PUBLISH reaches SUBSCRIBE and PSUBSCRIBE as RESP3 push frames")
    func pubsub() async throws {
        let channel = TestServers.key()
        let received = try await self.client.withSubscription(channels: [channel], patterns: [channel + ":*"]) {
            events async throws -> [RedisSubscriptionEvent] in
            var messages: [RedisSubscriptionEvent] = []
            for await event in events {
                switch event {
                case .subscribed:
                    #expect(try await self.client.send(PublishCommand(channel: channel, message: "hello")) == 1)
                    #expect(try await self.client.send(PublishCommand(channel: channel + ":x", message: "pattern")) == 1)
                case .message:
                    messages.append(event)
                }
                if messages.count == 2 { break }
            }
            return messages
        }
        #expect(
            received == [
                .message(channel: channel, payload: "hello", pattern: nil),
                .message(channel: channel + ":x", payload: "pattern", pattern: channel + ":*"),
            ])
        // Leaving the scope unsubscribed (confirmed) before it returned.
        let numsub = try await self.client.send(RawCommand("PUBSUB", "NUMSUB", channel))
        #expect(try numsub.pairs().first.map { try Int(fromRESP: $0.value) } == 0)
        let numpat = try await self.client.send(RawCommand("PUBSUB", "NUMPAT"))
        #expect(try numpat.decode(as: Int.self) == 0)
    }

    @Test("10 000 pipelined commands on one connection: one write, replies in order")
    func tenThousandPipelined() async throws {
        let key = TestServers.key()
        try await self.client.withConnection { connection in
            let commands = (0..<10_000).map { XAddCommand(key, fields: [("n", "\($0)")]) }
            let results = try await connection.pipeline(batch: commands)
            let ids = try results.map { try #require(try $0.get()) }
            #expect(ids.count == 10_000)
            #expect(ids == ids.sorted { StreamID($0) < StreamID($1) })
            #expect(Set(ids).count == 10_000)
            // And 10 000 concurrent requests from many tasks share the same connection.
            try await withThrowingTaskGroup(of: Bool.self) { group in
                for i in 0..<10_000 {
                    group.addTask { try await connection.send(PingCommand(message: "m\(i)")) == "m\(i)" }
                }
                var matched = 0
                for try await ok in group where ok { matched += 1 }
                #expect(matched == 10_000)
            }
        }
        #expect(try await self.client.send(XLenCommand(key)) == 10_000)
        let last = try await self.client.send(XRangeCommand(key, count: 1, reverse: true))
        #expect(last.first?["n"] == "9999")
        _ = try await self.client.send(DelCommand(key))
    }

    @Test("a blocking read on its own connection does not delay other commands")
    func blockingDoesNotDelay() async throws {
        let key = TestServers.key()
        _ = try await self.client.send(XGroupCreateCommand(key, group: "g", startID: "$"))
        let client = self.client
        let reader = Task {
            try await client.send(XReadGroupCommand(group: "g", consumer: "c", streams: [(key, ">")], block: .seconds(10)))
        }
        let clock = ContinuousClock()
        let start = clock.now
        for _ in 0..<200 { _ = try await self.client.send(PingCommand()) }
        let elapsed = clock.now - start
        // Generous sanity bound: the 200 round trips did not wait behind the 10 s block.
        #expect(elapsed < .seconds(5))
        let id = try #require(try await self.client.send(XAddCommand(key, fields: [("wake", "up")])))
        let read = try await reader.value
        #expect(read.entries(of: key).map(\.id) == [id])
        _ = try await self.client.send(DelCommand(key))
    }

    @Test("a pool of 4 serves 200 concurrent callers without opening more connections")
    func poolBounds() async throws {
        let url = try TestServers.require(TestServers.plain, "WAVE_TEST_REDIS_URL")
        // What is checked is the bound, not the pace: the test run shares two cores with every
        // other suite, so the wait for a free connection gets a generous deadline.
        let client = try TestServers.client(url) {
            $0.pool.maxConnections = 4
            $0.commandTimeout = .seconds(60)
        }
        try await withThrowingTaskGroup(of: String.self) { group in
            for i in 0..<200 { group.addTask { try await client.send(PingCommand(message: "\(i)")) } }
            var replies = Set<String>()
            for try await reply in group { replies.insert(reply) }
            #expect(replies.count == 200)
        }
        #expect(client.pool.openCount <= 4)
        #expect(client.pool.openCount >= 1)
        await client.shutdown()
        await #expect(throws: RedisClientError.self) { _ = try await client.send(PingCommand()) }
    }

    @Test("pool maintenance: idle connections above the minimum close after the idle timeout; idle ones get a keep-alive PING")
    func poolMaintenance() async throws {
        let url = try TestServers.require(TestServers.plain, "WAVE_TEST_REDIS_URL")
        let client = try TestServers.client(url) {
            $0.pool.minConnections = 1
            $0.pool.maxConnections = 4
            $0.pool.idleTimeout = .seconds(60)
            $0.pool.keepAliveInterval = .seconds(30)
        }
        // Three connections in use at once, then idle.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<3 {
                group.addTask {
                    try await client.withConnection { connection in
                        _ = try await connection.send(XReadCommand(streams: [("wave:test:none", "$")], block: .milliseconds(200)))
                    }
                }
            }
            try await group.waitForAll()
        }
        #expect(client.pool.openCount == 3)
        // 31 s later (the clock is passed in, nothing sleeps): keep-alive, nothing closed.
        await client.pool.maintain(now: .now + .seconds(31))
        #expect(client.pool.openCount == 3 && client.pool.idleCount == 3)
        // 61 s later: idle above the minimum closed.
        await client.pool.maintain(now: .now + .seconds(61))
        #expect(client.pool.openCount == 1)
        #expect(try await client.send(PingCommand()) == "PONG")
        await client.shutdown()
    }

    @Test("a cancelled blocking read fails with cancellation and its connection is discarded")
    func cancelBlocking() async throws {
        let key = TestServers.key()
        _ = try await self.client.send(XGroupCreateCommand(key, group: "g", startID: "$"))
        let client = self.client
        let reader = Task {
            try await client.send(XReadGroupCommand(group: "g", consumer: "c", streams: [(key, ">")], block: .seconds(30)))
        }
        // Cancel once the read is parked on the server (seen through CLIENT LIST's blocked clients).
        for _ in 0..<100 {
            let info = try await self.client.send(InfoCommand(section: "clients"))
            if (Int(info.value(for: "blocked_clients") ?? "0") ?? 0) > 0 { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        reader.cancel()
        let result = await reader.result
        guard case .failure(let error as RedisClientError) = result else {
            Issue.record("expected cancellation, got \(result)")
            return
        }
        #expect(error.code == .cancelled)
        _ = try await self.client.send(DelCommand(key))
    }
}

/// Orders stream ids numerically.
struct StreamID: Comparable {
    let ms: UInt64
    let seq: UInt64
    init(_ text: String) {
        let parts = text.split(separator: "-")
        self.ms = UInt64(parts[0]) ?? 0
        self.seq = UInt64(parts.count > 1 ? parts[1] : "0") ?? 0
    }
    static func < (a: StreamID, b: StreamID) -> Bool { (a.ms, a.seq) < (b.ms, b.seq) }
}
