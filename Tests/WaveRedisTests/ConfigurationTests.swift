import Testing
import WaveTesting

@testable import WaveRedis

@Suite("Redis URLs")
struct ConfigurationTests {
    @Test("URLs fill host, port, database, credentials and TLS")
    func parses() throws {
        let plain = try RedisConfiguration(url: "redis://10.1.2.3:6380/2")
        #expect(plain.host == "10.1.2.3" && plain.port == 6380 && plain.database == 2 && plain.tls == nil && plain.authentication == nil)
        let defaults = try RedisConfiguration(url: "redis://localhost")
        #expect(defaults.port == 6379 && defaults.database == 0)
        let password = try RedisConfiguration(url: "redis://:s%40cret@h:1")
        #expect(password.authentication == .init(username: nil, password: "s@cret"))
        let acl = try RedisConfiguration(url: "redis://wave:pw@h:1/0?name=orchestrator-1")
        #expect(acl.authentication == .init(username: "wave", password: "pw"))
        #expect(acl.clientName == "orchestrator-1")
        let tls = try RedisConfiguration(url: "rediss://redis.example:6390?ca=/etc/ca.pem")
        #expect(tls.tls == .init(caFile: "/etc/ca.pem", verifyCertificates: true))
        let ipv6 = try RedisConfiguration(url: "redis://[::1]:7000")
        #expect(ipv6.host == "::1" && ipv6.port == 7000)
    }

    @Test(
        "bad URLs give a clear error",
        arguments: [
            "http://h", "redis://", "redis://h:0", "redis://h:99999", "redis://h:x", "redis://h/-1", "redis://h?ca=/x",
            "rediss://h?verify=maybe", "redis://h?bogus=1", "redis://:%zz@h",
        ])
    func rejects(url: String) {
        #expect(throws: RedisClientError.self) { try RedisConfiguration(url: url) }
        do {
            _ = try RedisConfiguration(url: url)
        } catch {
            #expect(error.code == .invalidConfiguration)
        }
    }

    @Test("passwords never appear in redacted URLs or errors")
    func redaction() throws {
        let configuration = try RedisConfiguration(url: "redis://wave:topsecret@h:1/3")
        #expect(configuration.redactedURL == "redis://wave:***@h:1/3")
        #expect(RedisConfiguration.redact("redis://u:topsecret@h:1/2") == "redis://u:***@h:1/2")
        #expect(RedisConfiguration.redact("redis://topsecret@h") == "redis://***@h")
        do {
            _ = try RedisConfiguration(url: "redis://u:topsecret@h:notaport")
            Issue.record("no error")
        } catch {
            #expect(!error.description.contains("topsecret"))
        }
    }
}
