import NIOCore

/// Reads a validated RESP value front to back in one pass, without building a token per element.
///
/// ``RESPToken`` views decode an aggregate's children lazily, which is convenient but finds each
/// child's end by walking it, so a deeply nested reply (a stream read: streams → entries →
/// fields) is scanned once per level. A cursor reads headers and scalars in order instead, each
/// byte once; use it for large, regular replies on hot paths.
///
/// ```swift
/// var cursor = RESPCursor(token)
/// guard let count = try cursor.readArrayHeader() else { return }   // nil: a null
/// for _ in 0..<count { names.append(try cursor.readString()) }
/// ```
///
/// Attributes before a value are skipped. A value of the wrong type throws a
/// ``RESPDecodeError`` that carries it; the cursor then stands before that value.
public struct RESPCursor: Sendable {
    private var buffer: ByteBuffer

    /// A cursor at the start of a token.
    public init(_ token: RESPToken) {
        self.buffer = token.base
    }

    /// Whether every value has been read.
    public var isAtEnd: Bool { self.buffer.readableBytes == 0 }

    /// The type of the next value (after its attributes), or `nil` at the end.
    public mutating func peekType() -> RESPTypeIdentifier? {
        guard let first = self.buffer.readableBytesView.first else { return nil }
        if first == RESPTypeIdentifier.attribute.rawValue {
            RESPToken.skipAttributes(&self.buffer)
            guard let byte = self.buffer.readableBytesView.first else { return nil }
            return RESPTypeIdentifier(rawValue: byte)
        }
        return RESPTypeIdentifier(rawValue: first)
    }

    /// Reads the header of an array, set or push: its element count, or `nil` for a null.
    /// The elements follow.
    public mutating func readArrayHeader() throws(RESPDecodeError) -> Int? {
        try self.readAggregateHeader(map: false, expected: "an array")
    }

    /// Reads the header of a map: its number of key-value pairs, or `nil` for a null. Keys and
    /// values follow, alternating. A RESP2 array of even length is accepted as a flat map.
    public mutating func readMapHeader() throws(RESPDecodeError) -> Int? {
        let isMap = self.peekType() == .map
        let start = self.buffer.readerIndex
        guard let count = try self.readAggregateHeader(map: true, expected: "a map") else { return nil }
        if isMap { return count }
        guard count % 2 == 0 else {
            self.buffer.moveReaderIndex(to: start)
            throw RESPDecodeError(.invalidValue, expected: "an even number of elements", token: self.currentToken())
        }
        return count / 2
    }

    /// Reads a simple, bulk or verbatim string, or a number, as text.
    public mutating func readString() throws(RESPDecodeError) -> String {
        let start = self.buffer.readerIndex
        guard let text = try self.readOptionalString() else {
            self.buffer.moveReaderIndex(to: start)
            throw RESPDecodeError(.unexpectedType, expected: "a string", token: self.currentToken())
        }
        return text
    }

    /// Reads a string as ``readString()`` does, or `nil` for a null.
    public mutating func readOptionalString() throws(RESPDecodeError) -> String? {
        guard let type = self.peekType() else {
            throw RESPDecodeError(.unexpectedType, expected: "a string", token: .null)
        }
        switch type {
        case .bulkString, .verbatimString:
            // The header and the body in one pass over the raw bytes: this runs for every
            // field of every entry of a stream read.
            let skip = type == .verbatimString ? 4 : 0
            let (text, next) = self.buffer.withUnsafeReadableBytes { raw -> (String?, Int) in
                var end = 1
                while raw[end] != 0x0D { end += 1 }
                if end == 3, raw[1] == UInt8(ascii: "-"), raw[2] == UInt8(ascii: "1") { return (nil, end + 2) }
                var declared = 0
                for i in 1..<end { declared = declared * 10 + Int(raw[i] &- 0x30) }
                let body = UnsafeRawBufferPointer(rebasing: raw[(end + 2 + skip)..<(end + 2 + declared)])
                return (String(decoding: body, as: UTF8.self), end + 2 + declared + 2)
            }
            self.buffer.moveReaderIndex(forwardBy: next)
            return text
        case .simpleString, .integer, .double, .bigNumber:
            let start = self.buffer.readerIndex
            let end = RESPToken.lineEnd(self.buffer, from: start + 1)
            let text = self.buffer.getString(at: start + 1, length: end - start - 1) ?? ""
            self.buffer.moveReaderIndex(to: end + 2)
            return text
        case .null:
            self.buffer.moveReaderIndex(forwardBy: 3)
            return nil
        default:
            throw RESPDecodeError(.unexpectedType, expected: "a string", token: self.currentToken())
        }
    }

    /// Reads the next value whole, as a token.
    public mutating func readToken() -> RESPToken? {
        guard !self.isAtEnd else { return nil }
        let length = RESPToken.length(of: self.buffer, at: self.buffer.readerIndex)
        return RESPToken(validated: self.buffer.readSlice(length: length)!)
    }

    /// Skips the next value, aggregates included.
    public mutating func skipValue() {
        _ = self.readToken()
    }

    private func currentToken() -> RESPToken {
        guard !self.isAtEnd else { return .null }
        return RESPToken(validated: self.buffer.getSlice(at: self.buffer.readerIndex, length: RESPToken.length(of: self.buffer, at: self.buffer.readerIndex))!)
    }

    /// An array, set or push header; with `map`, a map or an array header.
    private mutating func readAggregateHeader(map: Bool, expected: String) throws(RESPDecodeError) -> Int? {
        guard let type = self.peekType() else {
            throw RESPDecodeError(.unexpectedType, expected: expected, token: .null)
        }
        let start = self.buffer.readerIndex
        if type == .null {
            self.buffer.moveReaderIndex(forwardBy: 3)
            return nil
        }
        let accepted = map ? (type == .map || type == .array) : (type == .array || type == .set || type == .push)
        guard accepted else {
            throw RESPDecodeError(.unexpectedType, expected: expected, token: self.currentToken())
        }
        let end = RESPToken.lineEnd(self.buffer, from: start + 1)
        let declared = RESPTokenDecoder.parseLength(self.buffer, at: start + 1, length: end - start - 1)!
        self.buffer.moveReaderIndex(to: end + 2)
        return declared < 0 ? nil : declared
    }
}

extension RESPToken {
    /// A RESP3 null (`_`).
    public static let null = RESPToken(validated: ByteBuffer(string: "_\r\n"))
}
