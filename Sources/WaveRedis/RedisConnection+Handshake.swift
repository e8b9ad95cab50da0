import Logging
import NIOCore
import RESP

/// What a server reported about itself during the handshake.
public struct RedisHello: Sendable, Hashable {
    /// The protocol in use: 3 after a successful `HELLO 3`, otherwise 2.
    public var protocolVersion: Int
    /// The server's version, such as `7.0.15`.
    public var serverVersion: String

    /// The version as numbers (`[7, 0, 15]`); unknown parts are 0.
    public var versionNumbers: [Int] {
        let parts = self.serverVersion.split(separator: ".").map { Int($0) ?? 0 }
        return parts + Array(repeating: 0, count: max(0, 3 - parts.count))
    }

    /// Whether the server's version is at least `major.minor`.
    public func isAtLeast(_ major: Int, _ minor: Int) -> Bool {
        let v = self.versionNumbers
        return v[0] > major || (v[0] == major && v[1] >= minor)
    }
}

extension RedisConnection {
    func handshake() async throws {
        let configuration = self.configuration
        var hello: RedisHello? = nil
        if configuration.preferRESP3 {
            var arguments = ["HELLO", "3"]
            if let auth = configuration.authentication {
                arguments += ["AUTH", auth.username ?? "default", auth.password]
            }
            if let name = configuration.clientName {
                arguments += ["SETNAME", name]
            }
            let reply = try await self.sendRaw(RawCommand(arguments: arguments)).throwingServerErrorIfRefusal()
            if let reply {
                var version = "unknown"
                var proto = 3
                for (key, value) in try reply.pairs() {
                    switch key.stringValue {
                    case "version": version = value.stringValue ?? version
                    case "proto": proto = (try? Int(fromRESP: value)) ?? proto
                    default: break
                    }
                }
                hello = RedisHello(protocolVersion: proto, serverVersion: version)
            } else {
                self.logger.notice("Redis refused HELLO 3; falling back to RESP2", metadata: ["wave.redis": "\(configuration.redactedURL)"])
                try await self.eventLoop.submit { self.handler.value.setProtocol(resp3: false) }.get()
            }
        }
        if hello == nil {
            if let auth = configuration.authentication {
                if let username = auth.username {
                    _ = try await self.send(RawCommand("AUTH", username, auth.password))
                } else {
                    _ = try await self.send(RawCommand("AUTH", auth.password))
                }
            }
            if let name = configuration.clientName {
                _ = try await self.send(RawCommand("CLIENT", "SETNAME", name))
            }
            let info = try await self.send(InfoCommand(section: "server"))
            hello = RedisHello(protocolVersion: 2, serverVersion: info.value(for: "redis_version") ?? "unknown")
        }
        if configuration.database != 0 {
            _ = try await self.send(SelectCommand(database: configuration.database))
        }
        let result = hello!
        self.setHello(result)
        self.logger.debug(
            "Redis connection ready",
            metadata: ["wave.redis": "\(configuration.redactedURL)", "wave.redis.protocol": "\(result.protocolVersion)"]
        )
    }
}

extension RESPToken {
    /// For `HELLO`: `nil` when the server refused the protocol (old server or `NOPROTO`), the
    /// reply otherwise; other errors (wrong password) are raised.
    fileprivate func throwingServerErrorIfRefusal() throws -> RESPToken? {
        if let message = self.errorMessage {
            let upper = message.uppercased()
            if upper.hasPrefix("NOPROTO") || upper.contains("UNKNOWN COMMAND") { return nil }
        }
        return try self.throwingServerError()
    }
}
