import RESP
import Testing
import WaveTesting

@testable import WaveRedis

@Suite("Real Redis: AUTH and TLS")
struct RealServerSecurityTests {
    func expectAuthenticationFailure(_ url: String) async throws {
        let client = try TestServers.client(url)
        defer { Task { await client.shutdown() } }
        do {
            _ = try await client.send(PingCommand())
            Issue.record("\(RedisConfiguration.redact(url)) connected")
        } catch let error as RedisClientError {
            #expect(error.code == .authentication, "\(error)")
            #expect(!error.description.contains("wrong-pass"))
        }
    }

    @Test(
        "requirepass: the right password connects, a wrong or missing one is refused",
        .enabled(if: TestServers.available(TestServers.auth)))
    func password() async throws {
        let url = try TestServers.require(TestServers.auth, "WAVE_TEST_REDIS_AUTH_URL")
        let client = try TestServers.client(url)
        #expect(try await client.send(PingCommand()) == "PONG")
        await client.shutdown()
        try await self.expectAuthenticationFailure(url.replacingOccurrences(of: "wave-default-pass", with: "wrong-pass"))
        let configuration = try RedisConfiguration(url: url)
        try await self.expectAuthenticationFailure("redis://\(configuration.host):\(configuration.port)")
    }

    @Test(
        "ACL user: the right user and password connect, a wrong password is refused",
        .enabled(if: TestServers.available(TestServers.acl)))
    func aclUser() async throws {
        let url = try TestServers.require(TestServers.acl, "WAVE_TEST_REDIS_ACL_URL")
        let client = try TestServers.client(url)
        #expect(try await client.send(PingCommand()) == "PONG")
        let whoami = try await client.send(RawCommand("ACL", "WHOAMI"))
        #expect(whoami.stringValue == "wave")
        await client.shutdown()
        try await self.expectAuthenticationFailure(url.replacingOccurrences(of: "wave-acl-pass", with: "wrong-pass"))
        try await self.expectAuthenticationFailure(url.replacingOccurrences(of: "wave:", with: "nobody:"))
    }

    @Test(
        "TLS: connects when the CA is trusted, is refused with the system roots",
        .enabled(if: TestServers.available(TestServers.tls)))
    func tls() async throws {
        let url = try TestServers.require(TestServers.tls, "WAVE_TEST_REDIS_TLS_URL")
        let ca = try TestServers.require(TestServers.tlsCA, "WAVE_TEST_REDIS_TLS_CA")
        let trusted = try TestServers.client(url + "?ca=\(ca)")
        #expect(try await trusted.send(PingCommand()) == "PONG")
        #expect(try await trusted.send(EchoViaEval()) == "over tls")
        await trusted.shutdown()

        let untrusted = try TestServers.client(url)
        do {
            _ = try await untrusted.send(PingCommand())
            Issue.record("TLS connected without trusting the CA")
        } catch let error as RedisClientError {
            #expect(error.code == .tls || error.code == .connectionFailed || error.code == .connectionClosed, "\(error)")
        }
        await untrusted.shutdown()
        // A missing CA file is a clear TLS error when the client is made.
        #expect(throws: RedisClientError.self) { _ = try TestServers.client(url + "?ca=/nonexistent/ca.pem") }
    }
}

private struct EchoViaEval: RedisCommand {
    typealias Response = String
    func encode(into arguments: inout RESP.RESPCommandEncoder.Arguments) {
        arguments.append("EVAL")
        arguments.append("return 'over tls'")
        arguments.append("0")
    }
}
