import NIOCore
import RESP

/// `PING [message]`: `PONG`, or the message echoed.
public struct PingCommand: RedisCommand {
    public typealias Response = String
    /// Text to echo instead of `PONG`.
    public var message: String?
    /// Creates the command.
    public init(message: String? = nil) { self.message = message }
    public func encode(into arguments: inout RESPCommandEncoder.Arguments) {
        arguments.append("PING")
        if let message { arguments.append(message) }
    }
}

/// `HELLO protover [AUTH user pass] [SETNAME name]`: the server's description as a map.
public struct HelloCommand: RedisCommand {
    public typealias Response = RESPToken
    /// 2 or 3.
    public var protocolVersion: Int
    /// Credentials.
    public var authentication: RedisConfiguration.Authentication?
    /// Client name.
    public var clientName: String?
    /// Creates the command.
    public init(protocolVersion: Int = 3, authentication: RedisConfiguration.Authentication? = nil, clientName: String? = nil) {
        self.protocolVersion = protocolVersion
        self.authentication = authentication
        self.clientName = clientName
    }
    public func encode(into arguments: inout RESPCommandEncoder.Arguments) {
        arguments.append("HELLO")
        arguments.append(self.protocolVersion)
        if let authentication {
            arguments.append("AUTH")
            arguments.append(authentication.username ?? "default")
            arguments.append(authentication.password)
        }
        if let clientName {
            arguments.append("SETNAME")
            arguments.append(clientName)
        }
    }
}

/// `AUTH [username] password`.
public struct AuthCommand: RedisCommand {
    public typealias Response = OKResponse
    /// Credentials.
    public var authentication: RedisConfiguration.Authentication
    /// Creates the command.
    public init(_ authentication: RedisConfiguration.Authentication) { self.authentication = authentication }
    public func encode(into arguments: inout RESPCommandEncoder.Arguments) {
        arguments.append("AUTH")
        if let username = self.authentication.username { arguments.append(username) }
        arguments.append(self.authentication.password)
    }
}

/// `SELECT index`.
public struct SelectCommand: RedisCommand {
    public typealias Response = OKResponse
    /// The database number.
    public var database: Int
    /// Creates the command.
    public init(database: Int) { self.database = database }
    public func encode(into arguments: inout RESPCommandEncoder.Arguments) {
        arguments.append("SELECT")
        arguments.append(self.database)
    }
}

/// `CLIENT SETNAME name`.
public struct ClientSetNameCommand: RedisCommand {
    public typealias Response = OKResponse
    /// The connection's new name (no spaces).
    public var name: String
    /// Creates the command.
    public init(name: String) { self.name = name }
    public func encode(into arguments: inout RESPCommandEncoder.Arguments) {
        arguments.append("CLIENT")
        arguments.append("SETNAME")
        arguments.append(self.name)
    }
}

/// `CLIENT GETNAME`.
public struct ClientGetNameCommand: RedisCommand {
    public typealias Response = String?
    /// Creates the command.
    public init() {}
    public func encode(into arguments: inout RESPCommandEncoder.Arguments) {
        arguments.append("CLIENT")
        arguments.append("GETNAME")
    }
}

/// The text of `INFO`, split into `key:value` lines.
public struct InfoReply: RESPTokenDecodable, Hashable {
    /// The whole text.
    public var text: String
    /// Each `key:value` line.
    public var values: [String: String]

    public init(fromRESP token: RESPToken) throws(RESPDecodeError) {
        self.text = try String(fromRESP: token)
        var values: [String: String] = [:]
        for line in self.text.split(whereSeparator: \.isNewline) where !line.hasPrefix("#") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            values[String(line[..<colon])] = String(line[line.index(after: colon)...])
        }
        self.values = values
    }

    /// The value of one key, such as `redis_version`.
    public func value(for key: String) -> String? { self.values[key] }
}

/// `INFO [section]`.
public struct InfoCommand: RedisCommand {
    public typealias Response = InfoReply
    /// A section such as `server`, `memory` or `persistence`; `nil` for the default set.
    public var section: String?
    /// Creates the command.
    public init(section: String? = nil) { self.section = section }
    public func encode(into arguments: inout RESPCommandEncoder.Arguments) {
        arguments.append("INFO")
        if let section { arguments.append(section) }
    }
}

/// `TIME`: the server's clock.
public struct TimeCommand: RedisCommand {
    /// Seconds and microseconds since the epoch.
    public struct Response: RESPTokenDecodable, Hashable {
        /// Whole seconds.
        public var seconds: Int64
        /// Microseconds within the second.
        public var microseconds: Int64
        /// Milliseconds since the epoch.
        public var milliseconds: Int64 { self.seconds * 1000 + self.microseconds / 1000 }

        public init(fromRESP token: RESPToken) throws(RESPDecodeError) {
            let parts = try [Int64](fromRESP: token)
            guard parts.count == 2 else { throw RESPDecodeError(.invalidValue, expected: "two numbers", token: token) }
            self.seconds = parts[0]
            self.microseconds = parts[1]
        }
    }
    /// Creates the command.
    public init() {}
    public func encode(into arguments: inout RESPCommandEncoder.Arguments) { arguments.append("TIME") }
}
