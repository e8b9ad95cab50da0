import NIOCore
import RESP

/// `MGET key [key …]`: each key's value, `nil` where it is missing or not a string.
public struct MGetCommand: RedisCommand {
    public typealias Response = [String?]
    /// The keys.
    public var keys: [String]
    /// Creates the command.
    public init(keys: [String]) { self.keys = keys }
    public func encode(into arguments: inout RESPCommandEncoder.Arguments) {
        arguments.append("MGET")
        arguments.append(contentsOf: self.keys)
    }
}

/// `HSET key field value [field value …]`: how many fields were added (not updated).
public struct HSetCommand: RedisCommand {
    public typealias Response = Int
    /// The key.
    public var key: String
    /// Fields and values, in order.
    public var fields: [(name: String, value: String)]
    /// Creates the command.
    public init(_ key: String, fields: [(name: String, value: String)]) {
        self.key = key
        self.fields = fields
    }
    public func encode(into arguments: inout RESPCommandEncoder.Arguments) {
        arguments.append("HSET")
        arguments.append(self.key)
        for field in self.fields {
            arguments.append(field.name)
            arguments.append(field.value)
        }
    }
}

/// `HGET key field`: the field's value, `nil` when the key or the field is missing.
public struct HGetCommand: RedisCommand {
    public typealias Response = String?
    /// The key.
    public var key: String
    /// The field.
    public var field: String
    /// Creates the command.
    public init(_ key: String, field: String) {
        self.key = key
        self.field = field
    }
    public func encode(into arguments: inout RESPCommandEncoder.Arguments) {
        arguments.append("HGET")
        arguments.append(self.key)
        arguments.append(self.field)
    }
}

/// `LPUSH key element [element …]`: the list's length after the push.
public struct LPushCommand: RedisCommand {
    public typealias Response = Int
    /// The key.
    public var key: String
    /// The elements, pushed in order (the last one ends up at the head).
    public var elements: [String]
    /// Creates the command.
    public init(_ key: String, elements: [String]) {
        self.key = key
        self.elements = elements
    }
    public func encode(into arguments: inout RESPCommandEncoder.Arguments) {
        arguments.append("LPUSH")
        arguments.append(self.key)
        arguments.append(contentsOf: self.elements)
    }
}

/// `LREM key count element`: how many occurrences were removed (`count` 0: all of them).
public struct LRemCommand: RedisCommand {
    public typealias Response = Int
    /// The key.
    public var key: String
    /// How many to remove: 0 all, > 0 from the head, < 0 from the tail.
    public var count: Int
    /// The element.
    public var element: String
    /// Creates the command.
    public init(_ key: String, count: Int = 0, element: String) {
        self.key = key
        self.count = count
        self.element = element
    }
    public func encode(into arguments: inout RESPCommandEncoder.Arguments) {
        arguments.append("LREM")
        arguments.append(self.key)
        arguments.append(self.count)
        arguments.append(self.element)
    }
}

/// `BRPOP key [key …] timeout`: the list and the element popped from its tail, or `nil` when
/// the timeout passed first. A blocking command: it runs on a dedicated connection.
public struct BRPopCommand: RedisCommand {
    public typealias Response = (key: String, element: String)?
    /// The lists, in the order they are tried.
    public var keys: [String]
    /// How long the server may block (whole milliseconds, sent as seconds).
    public var timeout: Duration
    /// Creates the command.
    public init(keys: [String], timeout: Duration) {
        self.keys = keys
        self.timeout = timeout
    }
    public var blockingTimeout: Duration? { self.timeout }
    public func encode(into arguments: inout RESPCommandEncoder.Arguments) {
        arguments.append("BRPOP")
        arguments.append(contentsOf: self.keys)
        let milliseconds = self.timeout.components.seconds * 1000 + self.timeout.components.attoseconds / 1_000_000_000_000_000
        arguments.append(String(format3: milliseconds))
    }
    public func decode(_ token: RESPToken) throws(RESPDecodeError) -> (key: String, element: String)? {
        if token.isNull { return nil }
        let pair = try [String](fromRESP: token)
        guard pair.count == 2 else { throw RESPDecodeError(.invalidValue, expected: "a [key, element] pair", token: token) }
        return (pair[0], pair[1])
    }
}

extension String {
    /// Milliseconds as seconds with three decimals (`1500` → `1.500`).
    init(format3 milliseconds: Int64) {
        let fraction = String(milliseconds % 1000)
        self = "\(milliseconds / 1000).\(String(repeating: "0", count: 3 - fraction.count))\(fraction)"
    }
}
