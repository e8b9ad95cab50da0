import Foundation
import NIOCore
import RESP
import ServiceLifecycle
import Testing
import WaveTesting

@testable import WaveRedis

@Suite("Real Redis: faults, recovery and RESP2", .serialized, .timeLimit(.minutes(3)), .enabled(if: TestServers.available(TestServers.serverBinary)))
struct RealServerFaultTests {
    @Test("a server killed mid-pipeline fails what is in flight, opens the breaker, and the client recovers by itself")
    func killMidPipeline() async throws {
        let server = try RedisServerProcess()
        try await server.start()
        let client = try TestServers.client(server.url) {
            $0.circuitBreaker = .init(failureThreshold: 3, openBackoff: Backoff(base: .milliseconds(100), cap: .milliseconds(500)))
            $0.commandTimeout = .seconds(5)
        }
        let service = Task { try await client.run() }
        defer { service.cancel() }
        let key = TestServers.key()
        _ = try await client.send(XGroupCreateCommand(key, group: "g", startID: "$"))

        // In flight at the moment of the kill: a blocking read and a large pipeline (to another
        // stream, so that its entries cannot answer the read).
        let blocked = Task { try await client.send(XReadGroupCommand(group: "g", consumer: "c", streams: [(key, ">")], block: .seconds(30))) }
        let deadline = ContinuousClock.now + .seconds(10)
        while try await client.send(InfoCommand(section: "clients")).value(for: "blocked_clients") != "1" {
            guard ContinuousClock.now < deadline else {
                Issue.record("the blocking read never blocked")
                return
            }
            try await Task.sleep(for: .milliseconds(10))
        }
        let pipeline = Task {
            try await client.pipeline(batch: (0..<200_000).map { XAddCommand("\(key):other", fields: [("n", "\($0)")]) })
        }
        try await Task.sleep(for: .milliseconds(20))
        server.kill()

        // Each must end by itself (failed by the connection loss, or by its deadline): bounded
        // here, so that a request that never completes fails this test instead of hanging the run.
        let readResult = try await result(of: blocked, within: .seconds(60), "the blocking read in flight at the kill")
        let pipelineResult = try await result(of: pipeline, within: .seconds(60), "the pipeline in flight at the kill")
        for result in [readResult.map { _ in () }, pipelineResult.map { _ in () }] {
            if case .failure(let error) = result {
                let error = try #require(error as? RedisClientError)
                #expect(error.isConnectionFailure, "\(error)")
            }
        }
        guard case .failure = readResult else {
            Issue.record("the blocking read survived the kill")
            return
        }

        // Requests now fail fast; after three connection failures the breaker is open.
        for _ in 0..<3 { _ = try? await client.send(PingCommand()) }
        #expect(client.breaker.state == .open)
        do {
            _ = try await client.send(PingCommand())
        } catch let error as RedisClientError {
            #expect(error.code == .circuitOpen || error.code == .connectionFailed)
        }

        // Restart on the same port: the client's own probes close the breaker.
        try await server.start()
        try await waitForBreaker(client.breaker, .closed, within: .seconds(10))
        #expect(try await client.send(PingCommand()) == "PONG")
        server.stop()
    }

    @Test("a subscription resubscribes after the server restarts")
    func subscriptionSurvivesRestart() async throws {
        let server = try RedisServerProcess()
        try await server.start()
        let client = try TestServers.client(server.url) {
            $0.reconnectBackoff = Backoff(base: .milliseconds(50), cap: .milliseconds(300))
            $0.circuitBreaker = .init(failureThreshold: 1000)
        }
        let subscribedTimes = try await client.withSubscription(channels: ["wave:test:restart"]) { events async throws -> Int in
            var subscribed = 0
            for await event in events {
                switch event {
                case .subscribed:
                    subscribed += 1
                    if subscribed == 1 {
                        server.kill()
                        try await server.start()
                    } else {
                        _ = try await client.send(PublishCommand(channel: "wave:test:restart", message: "after"))
                    }
                case .message(_, let payload, _):
                    #expect(payload == "after")
                    return subscribed
                }
            }
            return subscribed
        }
        #expect(subscribedTimes == 2)
        await client.shutdown()
        server.stop()
    }

    @Test("RESP2 fallback against a server that refuses HELLO: streams, groups, XINFO and pub/sub still work")
    func resp2Server() async throws {
        let server = try RedisServerProcess(arguments: ["--rename-command", "HELLO", ""])
        try await server.start()
        let client = try TestServers.client(server.url)
        #expect(try await client.send(PingCommand()) == "PONG")
        let info = try await client.serverInfo()
        #expect(info.protocolVersion == 2)
        let key = TestServers.key()
        _ = try await client.send(XGroupCreateCommand(key, group: "g", startID: "0"))
        let id = try #require(try await client.send(XAddCommand(key, fields: [("k", "v")])))
        let read = try await client.send(XReadGroupCommand(group: "g", consumer: "c", streams: [(key, ">")], count: 10, block: .milliseconds(100)))
        #expect(read.entries(of: key).map(\.id) == [id])
        let groups = try await client.send(XInfoGroupsCommand(key))
        #expect(groups.first?.pending == 1)
        let stream = try await client.send(XInfoStreamCommand(key))
        #expect(stream.length == 1 && stream.lastEntry?["k"] == "v")
        let claimed = try await client.send(XAutoClaimCommand(key, group: "g", consumer: "c2", minIdle: .zero))
        #expect(claimed.ids == [id])
        let received = try await client.withSubscription(channels: ["wave:test:resp2"]) { events async throws -> String? in
            for await event in events {
                switch event {
                case .subscribed:
                    _ = try await client.send(PublishCommand(channel: "wave:test:resp2", message: "two"))
                case .message(_, let payload, _):
                    return payload
                }
            }
            return nil
        }
        #expect(received == "two")
        await client.shutdown()
        server.stop()
    }
}

@Suite("Real Redis: lifecycle", .enabled(if: TestServers.available(TestServers.plain)))
struct RealServerLifecycleTests {
    @Test("in a ServiceGroup the client runs until graceful shutdown, then closes its connections")
    func gracefulShutdown() async throws {
        let client = try TestServers.client(try TestServers.require(TestServers.plain, "WAVE_TEST_REDIS_URL"))
        let group = ServiceGroup(services: [client], logger: TestServers.logger)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            #expect(try await client.send(PingCommand()) == "PONG")
            #expect(client.pool.openCount >= 1)
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
        #expect(client.pool.idleCount == 0)
        do {
            _ = try await client.send(PingCommand())
            Issue.record("a request succeeded after shutdown")
        } catch let error as RedisClientError {
            #expect(error.code == .clientShutdown)
        }
    }
}
