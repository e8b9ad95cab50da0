import NIOCore

/// One complete, validated RESP value, held as a zero-copy slice of the bytes it arrived in.
///
/// Tokens come from ``RESPTokenDecoder`` (or ``init(validating:limits:)``), which checked every
/// byte, so reading ``value`` never fails. Aggregates are views that decode their children
/// lazily, one at a time.
public struct RESPToken: Hashable, Sendable, CustomStringConvertible {
    /// The bytes of the value, exactly as received.
    public let base: ByteBuffer

    init(validated base: ByteBuffer) {
        self.base = base
    }

    /// Validates `buffer` as exactly one RESP value.
    /// - Throws: ``RESPParsingError`` if it is malformed, incomplete, or followed by other bytes.
    public init(validating buffer: ByteBuffer, limits: RESPDecoderLimits = .default) throws(RESPParsingError) {
        var copy = buffer
        var decoder = RESPTokenDecoder(limits: limits)
        guard let token = try decoder.decode(buffer: &copy) else {
            throw RESPParsingError(.missingCRLF, offset: buffer.readableBytes, excerpt: [])
        }
        guard copy.readableBytes == 0 else {
            throw RESPParsingError(.invalidTypeIdentifier, offset: token.base.readableBytes, excerpt: [])
        }
        self = token
    }

    /// The type of the value, after any attributes that annotate it.
    public var type: RESPTypeIdentifier {
        var buffer = self.base
        Self.skipAttributes(&buffer)
        return RESPTypeIdentifier(rawValue: buffer.getInteger(at: buffer.readerIndex, as: UInt8.self)!)!
    }

    /// A decoded RESP value. Aggregates are lazy views over the token's bytes.
    public enum Value: Hashable, Sendable {
        case simpleString(ByteBuffer)
        case simpleError(ByteBuffer)
        case integer(Int64)
        case bulkString(ByteBuffer)
        /// RESP3 `_`, and the RESP2 null bulk string and null array.
        case null
        case boolean(Bool)
        case double(Double)
        /// The digits of an arbitrarily large integer, with an optional sign.
        case bigNumber(ByteBuffer)
        case bulkError(ByteBuffer)
        /// The text of a verbatim string, with its three-letter format (`txt`, `mkd`) apart.
        case verbatimString(format: String, text: ByteBuffer)
        case array(Array)
        case map(Map)
        case set(Array)
        case push(Array)
    }

    /// The value this token holds. Attributes before it are skipped (see ``attributes``).
    public var value: Value {
        var buffer = self.base
        Self.skipAttributes(&buffer)
        // The buffer now holds exactly this value: an aggregate's children are the rest of it.
        return Self.decodeValue(&buffer, exact: true)
    }

    /// The RESP3 attributes that annotate this value, if any.
    public var attributes: Map? {
        guard self.base.getInteger(at: self.base.readerIndex, as: UInt8.self) == RESPTypeIdentifier.attribute.rawValue else {
            return nil
        }
        var buffer = self.base
        guard case .map(let map) = Self.decodeValue(&buffer, attributeAsMap: true) else { return nil }
        return map
    }

    /// Whether the value is a simple or bulk error.
    public var isError: Bool {
        switch self.type {
        case .simpleError, .bulkError: true
        default: false
        }
    }

    /// The error text, if this value is an error.
    public var errorMessage: String? {
        let first = self.base.getInteger(at: self.base.readerIndex, as: UInt8.self)
        guard
            first == RESPTypeIdentifier.simpleError.rawValue || first == RESPTypeIdentifier.bulkError.rawValue
                || first == RESPTypeIdentifier.attribute.rawValue
        else { return nil }
        switch self.value {
        case .simpleError(let text), .bulkError(let text): return String(buffer: text)
        default: return nil
        }
    }

    public var description: String {
        switch self.value {
        case .simpleString(let b): return "+\(String(buffer: b))"
        case .simpleError(let b): return "-\(String(buffer: b))"
        case .integer(let i): return ":\(i)"
        case .bulkString(let b): return "\"\(String(buffer: b))\""
        case .null: return "null"
        case .boolean(let b): return "#\(b)"
        case .double(let d): return ",\(d)"
        case .bigNumber(let b): return "(\(String(buffer: b))"
        case .bulkError(let b): return "!\(String(buffer: b))"
        case .verbatimString(let format, let text): return "=\(format):\(String(buffer: text))"
        case .array(let a): return "[" + a.map(\.description).joined(separator: ", ") + "]"
        case .set(let a): return "~[" + a.map(\.description).joined(separator: ", ") + "]"
        case .push(let a): return ">[" + a.map(\.description).joined(separator: ", ") + "]"
        case .map(let m): return "{" + m.map { "\($0.key): \($0.value)" }.joined(separator: ", ") + "}"
        }
    }

    // MARK: - Trusted decoding of validated bytes

    static func skipAttributes(_ buffer: inout ByteBuffer) {
        while buffer.getInteger(at: buffer.readerIndex, as: UInt8.self) == RESPTypeIdentifier.attribute.rawValue {
            let length = Self.length(of: buffer, at: buffer.readerIndex)
            buffer.moveReaderIndex(forwardBy: length)
        }
    }

    /// Index of the CR that ends the line starting at `index`.
    static func lineEnd(_ buffer: ByteBuffer, from index: Int) -> Int {
        buffer.withUnsafeReadableBytes { raw in
            var i = index - buffer.readerIndex
            while raw[i] != 0x0D { i += 1 }
            return i + buffer.readerIndex
        }
    }

    /// The number of bytes the validated value at `index` takes, attributes included.
    static func length(of buffer: ByteBuffer, at index: Int) -> Int {
        let type = RESPTypeIdentifier(rawValue: buffer.getInteger(at: index, as: UInt8.self)!)!
        let end = Self.lineEnd(buffer, from: index + 1)
        let header = end + 2 - index
        if type.isLine { return header }
        let declared = RESPTokenDecoder.parseLength(buffer, at: index + 1, length: end - index - 1)!
        if declared < 0 { return header }
        if type.isBlob { return header + declared + 2 }
        var total = header
        var remaining = declared * type.childrenPerElement
        while remaining > 0 {
            let child = index + total
            let isAttribute = buffer.getInteger(at: child, as: UInt8.self) == RESPTypeIdentifier.attribute.rawValue
            total += Self.length(of: buffer, at: child)
            if !isAttribute { remaining -= 1 }
        }
        return total
    }

    /// Decodes the value at the reader index. With `exact`, the buffer holds exactly one value
    /// (a token's own bytes), so an aggregate's children need not be scanned to find its end.
    static func decodeValue(_ buffer: inout ByteBuffer, attributeAsMap: Bool = false, exact: Bool = false) -> Value {
        let start = buffer.readerIndex
        let type = RESPTypeIdentifier(rawValue: buffer.getInteger(at: start, as: UInt8.self)!)!
        let end = Self.lineEnd(buffer, from: start + 1)
        let contentLength = end - start - 1
        if type.isLine {
            let content = buffer.getSlice(at: start + 1, length: contentLength)!
            buffer.moveReaderIndex(to: end + 2)
            switch type {
            case .simpleString: return .simpleString(content)
            case .simpleError: return .simpleError(content)
            case .integer: return .integer(RESPTokenDecoder.parseInt64(content, at: content.readerIndex, length: contentLength)!)
            case .null: return .null
            case .boolean: return .boolean(content.getInteger(at: content.readerIndex, as: UInt8.self) == UInt8(ascii: "t"))
            case .double: return .double(RESPTokenDecoder.parseDouble(content, at: content.readerIndex, length: contentLength)!)
            default: return .bigNumber(content)
            }
        }
        let declared = RESPTokenDecoder.parseLength(buffer, at: start + 1, length: contentLength)!
        buffer.moveReaderIndex(to: end + 2)
        if declared < 0 { return .null }
        if type.isBlob {
            let body = buffer.readSlice(length: declared)!
            buffer.moveReaderIndex(forwardBy: 2)
            switch type {
            case .bulkString: return .bulkString(body)
            case .bulkError: return .bulkError(body)
            default:
                let format = String(buffer: body.getSlice(at: body.readerIndex, length: 3)!)
                return .verbatimString(format: format, text: body.getSlice(at: body.readerIndex + 4, length: declared - 4)!)
            }
        }
        // Aggregate: slice out the children.
        var children = 0
        var remaining = declared * type.childrenPerElement
        let childrenStart = buffer.readerIndex
        if exact, type != .attribute {
            children = buffer.readableBytes
            remaining = 0
        }
        while remaining > 0 {
            let child = childrenStart + children
            let isAttribute = buffer.getInteger(at: child, as: UInt8.self) == RESPTypeIdentifier.attribute.rawValue
            children += Self.length(of: buffer, at: child)
            if !isAttribute { remaining -= 1 }
        }
        let slice = buffer.readSlice(length: children)!
        switch type {
        case .array: return .array(Array(count: declared, buffer: slice))
        case .set: return .set(Array(count: declared, buffer: slice))
        case .push: return .push(Array(count: declared, buffer: slice))
        case .map: return .map(Map(count: declared, buffer: slice))
        default:
            // An attribute: skip it and decode what it annotates, unless asked for the map.
            if attributeAsMap { return .map(Map(count: declared, buffer: slice)) }
            return Self.decodeValue(&buffer)
        }
    }
}
