import NIOCore
import RESP

/// `GET key`.
public struct GetCommand: RedisCommand {
    public typealias Response = String?
    /// The key.
    public var key: String
    /// Creates the command.
    public init(_ key: String) { self.key = key }
    public func encode(into arguments: inout RESPCommandEncoder.Arguments) {
        arguments.append("GET")
        arguments.append(self.key)
    }
}

/// `SET key value [NX | XX] [EX s | PX ms]`: `true` when the value was set, `false` when a
/// condition (`NX`/`XX`) stopped it.
public struct SetCommand: RedisCommand {
    /// Only set if the key does not exist (`NX`) or does (`XX`).
    public enum Condition: Sendable, Hashable { case ifNotExists, ifExists }
    /// How long the key lives.
    public enum Expiration: Sendable, Hashable {
        /// `EX seconds`.
        case seconds(Int)
        /// `PX milliseconds`.
        case milliseconds(Int)
    }
    /// The key.
    public var key: String
    /// The value.
    public var value: String
    /// A condition, if any.
    public var condition: Condition?
    /// An expiry, if any.
    public var expiration: Expiration?

    /// Creates the command.
    public init(_ key: String, value: String, condition: Condition? = nil, expiration: Expiration? = nil) {
        self.key = key
        self.value = value
        self.condition = condition
        self.expiration = expiration
    }

    public func encode(into arguments: inout RESPCommandEncoder.Arguments) {
        arguments.append("SET")
        arguments.append(self.key)
        arguments.append(self.value)
        switch self.condition {
        case .ifNotExists: arguments.append("NX")
        case .ifExists: arguments.append("XX")
        case nil: break
        }
        switch self.expiration {
        case .seconds(let s):
            arguments.append("EX")
            arguments.append(s)
        case .milliseconds(let ms):
            arguments.append("PX")
            arguments.append(ms)
        case nil: break
        }
    }

    public func decode(_ token: RESPToken) throws(RESPDecodeError) -> Bool {
        if token.isNull { return false }
        _ = try OKResponse(fromRESP: token)
        return true
    }
}

/// `DEL key [key …]`: how many keys were removed.
public struct DelCommand: RedisCommand {
    public typealias Response = Int
    /// The keys.
    public var keys: [String]
    /// Creates the command.
    public init(_ keys: String...) { self.keys = keys }
    /// Creates the command.
    public init(keys: [String]) { self.keys = keys }
    public func encode(into arguments: inout RESPCommandEncoder.Arguments) {
        arguments.append("DEL")
        arguments.append(contentsOf: self.keys)
    }
}

/// `EXISTS key [key …]`: how many of the keys exist.
public struct ExistsCommand: RedisCommand {
    public typealias Response = Int
    /// The keys.
    public var keys: [String]
    /// Creates the command.
    public init(_ keys: String...) { self.keys = keys }
    public func encode(into arguments: inout RESPCommandEncoder.Arguments) {
        arguments.append("EXISTS")
        arguments.append(contentsOf: self.keys)
    }
}

/// `EXPIRE key seconds`: whether the timeout was set (the key exists).
public struct ExpireCommand: RedisCommand {
    public typealias Response = Bool
    /// The key.
    public var key: String
    /// Seconds from now.
    public var seconds: Int
    /// Creates the command.
    public init(_ key: String, seconds: Int) {
        self.key = key
        self.seconds = seconds
    }
    public func encode(into arguments: inout RESPCommandEncoder.Arguments) {
        arguments.append("EXPIRE")
        arguments.append(self.key)
        arguments.append(self.seconds)
    }
}

/// `TTL key`: seconds left, -1 without expiry, -2 when missing.
public struct TTLCommand: RedisCommand {
    public typealias Response = Int
    /// The key.
    public var key: String
    /// Creates the command.
    public init(_ key: String) { self.key = key }
    public func encode(into arguments: inout RESPCommandEncoder.Arguments) {
        arguments.append("TTL")
        arguments.append(self.key)
    }
}

/// `PUBLISH channel message`: how many subscribers received it.
public struct PublishCommand: RedisCommand {
    public typealias Response = Int
    /// The channel.
    public var channel: String
    /// The message.
    public var message: String
    /// Creates the command.
    public init(channel: String, message: String) {
        self.channel = channel
        self.message = message
    }
    public func encode(into arguments: inout RESPCommandEncoder.Arguments) {
        arguments.append("PUBLISH")
        arguments.append(self.channel)
        arguments.append(self.message)
    }
}

/// `EVAL script numkeys key… arg…`: the script's reply.
public struct EvalCommand: RedisCommand {
    public typealias Response = RESPToken
    /// The Lua source.
    public var script: String
    /// Keys the script touches.
    public var keys: [String]
    /// Other arguments.
    public var arguments: [String]
    /// Creates the command.
    public init(script: String, keys: [String] = [], arguments: [String] = []) {
        self.script = script
        self.keys = keys
        self.arguments = arguments
    }
    public func encode(into arguments: inout RESPCommandEncoder.Arguments) {
        arguments.appendScriptCall("EVAL", self.script, keys: self.keys, arguments: self.arguments)
    }
}

/// `EVALSHA sha1 numkeys key… arg…`: fails with `NOSCRIPT` when the script is not loaded.
public struct EvalShaCommand: RedisCommand {
    public typealias Response = RESPToken
    /// The script's SHA-1, from ``ScriptLoadCommand``.
    public var sha1: String
    /// Keys the script touches.
    public var keys: [String]
    /// Other arguments.
    public var arguments: [String]
    /// Creates the command.
    public init(sha1: String, keys: [String] = [], arguments: [String] = []) {
        self.sha1 = sha1
        self.keys = keys
        self.arguments = arguments
    }
    public func encode(into arguments: inout RESPCommandEncoder.Arguments) {
        arguments.appendScriptCall("EVALSHA", self.sha1, keys: self.keys, arguments: self.arguments)
    }
}

/// `SCRIPT LOAD script`: the script's SHA-1.
public struct ScriptLoadCommand: RedisCommand {
    public typealias Response = String
    /// The Lua source.
    public var script: String
    /// Creates the command.
    public init(script: String) { self.script = script }
    public func encode(into arguments: inout RESPCommandEncoder.Arguments) {
        arguments.append("SCRIPT")
        arguments.append("LOAD")
        arguments.append(self.script)
    }
}

extension RESPCommandEncoder.Arguments {
    /// `NAME script-or-sha numkeys key… arg…`.
    mutating func appendScriptCall(_ name: String, _ script: String, keys: [String], arguments: [String]) {
        self.append(name)
        self.append(script)
        self.append(keys.count)
        self.append(contentsOf: keys)
        self.append(contentsOf: arguments)
    }
}
