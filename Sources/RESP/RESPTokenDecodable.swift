import NIOCore

/// A token did not hold the value a caller expected.
public struct RESPDecodeError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The kind of mismatch.
    public enum Code: Sendable, Hashable {
        /// The value has another RESP type.
        case unexpectedType
        /// The value has the right type but an unusable content (for example text that is not a
        /// number, or an aggregate of the wrong size).
        case invalidValue
    }
    /// The kind of mismatch.
    public var code: Code
    /// What was expected.
    public var expected: String
    /// The offending token.
    public var token: RESPToken

    /// Creates an error.
    public init(_ code: Code, expected: String, token: RESPToken) {
        self.code = code
        self.expected = expected
        self.token = token
    }

    public var description: String {
        "expected \(self.expected), got \(self.token.description.prefix(200))"
    }
}

/// A type that can be read from a ``RESPToken``.
///
/// Conformances accept both RESP3 and RESP2 shapes of the same reply (a RESP3 map or a RESP2
/// flat array of pairs; a RESP3 double or a RESP2 bulk string holding a number).
public protocol RESPTokenDecodable: Sendable {
    /// Reads a value from a token.
    /// - Throws: ``RESPDecodeError`` when the token holds something else.
    init(fromRESP token: RESPToken) throws(RESPDecodeError)
}

extension RESPToken: RESPTokenDecodable {
    public init(fromRESP token: RESPToken) { self = token }
}

extension ByteBuffer: RESPTokenDecodable {
    public init(fromRESP token: RESPToken) throws(RESPDecodeError) {
        switch token.value {
        case .simpleString(let b), .bulkString(let b), .verbatimString(_, let b), .bigNumber(let b): self = b
        default: throw RESPDecodeError(.unexpectedType, expected: "a string", token: token)
        }
    }
}

extension String: RESPTokenDecodable {
    public init(fromRESP token: RESPToken) throws(RESPDecodeError) {
        switch token.value {
        case .simpleString(let b), .bulkString(let b), .verbatimString(_, let b), .bigNumber(let b):
            self = String(buffer: b)
        case .integer(let i): self = String(i)
        case .double(let d): self = String(d)
        default: throw RESPDecodeError(.unexpectedType, expected: "a string", token: token)
        }
    }
}

extension Int64: RESPTokenDecodable {
    public init(fromRESP token: RESPToken) throws(RESPDecodeError) {
        switch token.value {
        case .integer(let i): self = i
        case .simpleString(let b), .bulkString(let b):
            guard let i = RESPTokenDecoder.parseInt64(b, at: b.readerIndex, length: b.readableBytes) else {
                throw RESPDecodeError(.invalidValue, expected: "an integer", token: token)
            }
            self = i
        default: throw RESPDecodeError(.unexpectedType, expected: "an integer", token: token)
        }
    }
}

extension Int: RESPTokenDecodable {
    public init(fromRESP token: RESPToken) throws(RESPDecodeError) {
        self = Int(try Int64(fromRESP: token))
    }
}

extension Double: RESPTokenDecodable {
    public init(fromRESP token: RESPToken) throws(RESPDecodeError) {
        switch token.value {
        case .double(let d): self = d
        case .integer(let i): self = Double(i)
        case .simpleString(let b), .bulkString(let b):
            guard let d = RESPTokenDecoder.parseDouble(b, at: b.readerIndex, length: b.readableBytes) else {
                throw RESPDecodeError(.invalidValue, expected: "a double", token: token)
            }
            self = d
        default: throw RESPDecodeError(.unexpectedType, expected: "a double", token: token)
        }
    }
}

extension Bool: RESPTokenDecodable {
    /// Reads a RESP3 boolean, or an integer `0`/`1` (RESP2's way of saying the same).
    public init(fromRESP token: RESPToken) throws(RESPDecodeError) {
        switch token.value {
        case .boolean(let b): self = b
        case .integer(let i) where i == 0 || i == 1: self = i == 1
        default: throw RESPDecodeError(.unexpectedType, expected: "a boolean", token: token)
        }
    }
}

extension Optional: RESPTokenDecodable where Wrapped: RESPTokenDecodable {
    /// `nil` for a RESP3 null or a RESP2 null bulk string or array.
    public init(fromRESP token: RESPToken) throws(RESPDecodeError) {
        if case .null = token.value {
            self = .none
        } else {
            self = .some(try Wrapped(fromRESP: token))
        }
    }
}

extension Array: RESPTokenDecodable where Element: RESPTokenDecodable {
    /// Reads an array, set or push whose elements all decode as `Element`.
    public init(fromRESP token: RESPToken) throws(RESPDecodeError) {
        switch token.value {
        case .array(let a), .set(let a), .push(let a):
            var result: [Element] = []
            result.reserveCapacity(a.count)
            for element in a { result.append(try Element(fromRESP: element)) }
            self = result
        default: throw RESPDecodeError(.unexpectedType, expected: "an array", token: token)
        }
    }
}

extension RESPToken {
    /// The pairs of a RESP3 map, or of a RESP2 flat array `[k1, v1, k2, v2, …]`.
    /// - Throws: ``RESPDecodeError`` when the token is neither, or the array has odd length.
    public func pairs() throws(RESPDecodeError) -> [(key: RESPToken, value: RESPToken)] {
        switch self.value {
        case .map(let map):
            return Swift.Array(map)
        case .array(let array):
            guard array.count % 2 == 0 else {
                throw RESPDecodeError(.invalidValue, expected: "an even number of elements", token: self)
            }
            var result: [(key: RESPToken, value: RESPToken)] = []
            result.reserveCapacity(array.count / 2)
            var iterator = array.makeIterator()
            while let key = iterator.next(), let value = iterator.next() { result.append((key, value)) }
            return result
        default:
            throw RESPDecodeError(.unexpectedType, expected: "a map", token: self)
        }
    }

    /// The elements of an array, set or push.
    /// - Throws: ``RESPDecodeError`` when the token is not an aggregate of elements.
    public func elements() throws(RESPDecodeError) -> [RESPToken] {
        switch self.value {
        case .array(let a), .set(let a), .push(let a): return a.elements
        default: throw RESPDecodeError(.unexpectedType, expected: "an array", token: self)
        }
    }

    /// Reads the token as `T`.
    public func decode<T: RESPTokenDecodable>(as type: T.Type = T.self) throws(RESPDecodeError) -> T {
        try T(fromRESP: self)
    }

    /// Whether the value is a null.
    public var isNull: Bool {
        if case .null = self.value { return true }
        return false
    }
}

extension Dictionary: RESPTokenDecodable where Key: RESPTokenDecodable, Value: RESPTokenDecodable {
    /// Reads a map (or a RESP2 flat array of pairs). A repeated key keeps its last value.
    public init(fromRESP token: RESPToken) throws(RESPDecodeError) {
        var result: [Key: Value] = [:]
        for (k, v) in try token.pairs() { result[try Key(fromRESP: k)] = try Value(fromRESP: v) }
        self = result
    }
}
