import NIOCore

/// An incremental RESP3 (and RESP2) decoder that turns bytes into complete ``RESPToken``s.
///
/// It is a single-step decoder: each call resumes where the previous one stopped. Elements of an
/// aggregate that were already validated are never scanned again when more bytes arrive, and a
/// long line that is still incomplete is searched for its CRLF only from where the last search
/// ended. A complete top-level value is returned as a zero-copy slice of the input.
///
/// Every malformed input raises a ``RESPParsingError``; ``RESPDecoderLimits`` bound nesting depth,
/// blob length, aggregate size and total value size, so hostile input cannot exhaust memory or
/// the stack.
public struct RESPTokenDecoder: NIOSingleStepByteToMessageDecoder, Sendable {
    public typealias InboundOut = RESPToken

    /// The limits this decoder enforces.
    public let limits: RESPDecoderLimits

    /// Bytes from the reader index that are already validated parts of the value in progress.
    private var scanned = 0
    /// Remaining children of each open aggregate, innermost last.
    private var open: [OpenAggregate] = []
    /// How many bytes after the type byte of the current line were searched for CRLF in vain.
    private var lineSearched = 0

    private struct OpenAggregate: Sendable {
        var remaining: Int
        let isAttribute: Bool
    }

    private enum Step {
        case needMoreData
        case proceed
        case complete
    }

    /// Creates a decoder.
    /// - Parameter limits: the bounds to enforce.
    public init(limits: RESPDecoderLimits = .default) {
        self.limits = limits
    }

    /// Bytes of the value in progress already validated (zero between values). For tests and
    /// diagnostics.
    public var progress: Int { self.scanned }

    /// Decodes the next complete value, or returns `nil` when more bytes are needed.
    /// - Throws: ``RESPParsingError`` when the bytes are not valid RESP or exceed the limits.
    public mutating func decode(buffer: inout ByteBuffer) throws(RESPParsingError) -> RESPToken? {
        // Every step reads the raw bytes of one pass: a stream read is tens of thousands of
        // elements, and a `getInteger` per byte looked at costs several times more.
        let view = buffer
        let complete = try view.withUnsafeReadableBytes { (raw) throws(RESPParsingError) -> Bool in
            while true {
                switch try self.step(raw, view) {
                case .needMoreData: return false
                case .proceed: continue
                case .complete: return true
                }
            }
        }
        guard complete else { return nil }
        let slice = buffer.readSlice(length: self.scanned)!
        self.scanned = 0
        self.lineSearched = 0
        return RESPToken(validated: slice)
    }

    /// Decodes at end of input; a partial value is left undecoded.
    public mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws(RESPParsingError) -> RESPToken? {
        try self.decode(buffer: &buffer)
    }

    // MARK: - Scanning

    /// One element. `raw` holds `buffer`'s readable bytes; indices are the buffer's, and
    /// `raw[index - base]` is the byte at `index`.
    private mutating func step(_ raw: UnsafeRawBufferPointer, _ buffer: ByteBuffer) throws(RESPParsingError) -> Step {
        let base = buffer.readerIndex
        let start = base + self.scanned
        let available = buffer.writerIndex - start
        guard available > 0 else { return .needMoreData }
        let typeByte = raw[start - base]
        guard let type = RESPTypeIdentifier(rawValue: typeByte) else {
            throw self.error(.invalidTypeIdentifier, buffer, at: start)
        }
        let maxLine = type.isLine ? self.limits.maxBulkLength : 24
        guard let lineEnd = try self.findLineEnd(raw, buffer, contentStart: start + 1, maxLength: maxLine, type: type) else {
            return .needMoreData
        }
        let contentLength = lineEnd - (start + 1)
        let headerLength = contentLength + 3

        if type.isLine {
            try self.validateLine(type, buffer, start: start + 1, length: contentLength)
            try self.advance(by: headerLength, buffer, at: start)
            return self.completeElement(isAttribute: false)
        }

        guard let declared = Self.parseLength(raw, at: start + 1 - base, length: contentLength) else {
            throw self.error(.invalidLength, buffer, at: start)
        }
        if declared == -1 {
            // RESP2 null bulk string and null array.
            guard type == .bulkString || type == .array else {
                throw self.error(.invalidLength, buffer, at: start)
            }
            try self.advance(by: headerLength, buffer, at: start)
            return self.completeElement(isAttribute: false)
        }

        if type.isBlob {
            guard declared <= self.limits.maxBulkLength else {
                throw self.error(.bulkTooLong, buffer, at: start)
            }
            let total = headerLength + declared + 2
            guard self.scanned + total <= self.limits.maxTokenBytes else {
                throw self.error(.tokenTooLarge, buffer, at: start)
            }
            guard available >= total else {
                // The header is known good; only its CRLF position is remembered.
                self.lineSearched = contentLength
                return .needMoreData
            }
            let bodyStart = start + headerLength
            guard raw[bodyStart + declared - base] == 0x0D, raw[bodyStart + declared + 1 - base] == 0x0A else {
                throw self.error(.missingCRLF, buffer, at: bodyStart + declared)
            }
            if type == .verbatimString {
                guard declared >= 4, raw[bodyStart + 3 - base] == UInt8(ascii: ":") else {
                    throw self.error(.invalidVerbatimString, buffer, at: start)
                }
            }
            try self.advance(by: total, buffer, at: start)
            return self.completeElement(isAttribute: false)
        }

        // Aggregates.
        guard declared <= self.limits.maxAggregateCount else {
            throw self.error(.aggregateTooLarge, buffer, at: start)
        }
        guard self.open.count < self.limits.maxDepth else {
            throw self.error(.depthExceeded, buffer, at: start)
        }
        let children = declared * type.childrenPerElement
        guard children <= self.limits.maxAggregateCount else {
            throw self.error(.aggregateTooLarge, buffer, at: start)
        }
        try self.advance(by: headerLength, buffer, at: start)
        if children == 0 {
            return self.completeElement(isAttribute: type == .attribute)
        }
        self.open.append(OpenAggregate(remaining: children, isAttribute: type == .attribute))
        return .proceed
    }

    private mutating func advance(by count: Int, _ buffer: ByteBuffer, at start: Int) throws(RESPParsingError) {
        self.scanned += count
        self.lineSearched = 0
        guard self.scanned <= self.limits.maxTokenBytes else {
            throw self.error(.tokenTooLarge, buffer, at: start)
        }
    }

    /// Counts a finished element towards its enclosing aggregates and reports whether the
    /// top-level value is now complete. An attribute does not count as an element: it annotates
    /// the value that follows it.
    private mutating func completeElement(isAttribute: Bool) -> Step {
        var finishedIsAttribute = isAttribute
        while true {
            if finishedIsAttribute { return .proceed }
            guard !self.open.isEmpty else { return .complete }
            self.open[self.open.count - 1].remaining -= 1
            if self.open[self.open.count - 1].remaining > 0 { return .proceed }
            finishedIsAttribute = self.open.removeLast().isAttribute
        }
    }

    /// Finds the CR of the CRLF ending the line whose content starts at `contentStart`, resuming
    /// an earlier search. Returns `nil` when the line is not complete yet.
    private mutating func findLineEnd(
        _ raw: UnsafeRawBufferPointer,
        _ buffer: ByteBuffer,
        contentStart: Int,
        maxLength: Int,
        type: RESPTypeIdentifier
    ) throws(RESPParsingError) -> Int? {
        // A CR may have been the last byte searched, its LF not yet arrived: look at it again.
        let resume = max(0, self.lineSearched - 1)
        let end = buffer.writerIndex
        var found: Int? = nil
        var bad: Int? = nil
        do {
            let base = buffer.readerIndex
            var i = contentStart + resume
            while i < end {
                let byte = raw[i - base]
                if byte == 0x0D {
                    if i + 1 >= end { break }
                    if raw[i + 1 - base] == 0x0A {
                        found = i
                    } else {
                        bad = i
                    }
                    break
                }
                if byte == 0x0A {
                    bad = i
                    break
                }
                i += 1
            }
        }
        if let bad {
            throw self.error(.missingCRLF, buffer, at: bad)
        }
        if let found {
            guard found - contentStart <= maxLength else {
                throw self.error(type.isLine ? .bulkTooLong : .invalidLength, buffer, at: contentStart - 1)
            }
            return found
        }
        let searched = end - contentStart
        guard searched <= maxLength + 1 else {
            throw self.error(type.isLine ? .bulkTooLong : .invalidLength, buffer, at: contentStart - 1)
        }
        self.lineSearched = searched
        return nil
    }

    private func validateLine(_ type: RESPTypeIdentifier, _ buffer: ByteBuffer, start: Int, length: Int) throws(RESPParsingError) {
        switch type {
        case .integer:
            guard Self.parseInt64(buffer, at: start, length: length) != nil else {
                throw self.error(.invalidInteger, buffer, at: start - 1)
            }
        case .null:
            guard length == 0 else { throw self.error(.invalidNull, buffer, at: start - 1) }
        case .boolean:
            let byte = buffer.getInteger(at: start, as: UInt8.self)
            guard length == 1, byte == UInt8(ascii: "t") || byte == UInt8(ascii: "f") else {
                throw self.error(.invalidBoolean, buffer, at: start - 1)
            }
        case .double:
            guard Self.parseDouble(buffer, at: start, length: length) != nil else {
                throw self.error(.invalidDouble, buffer, at: start - 1)
            }
        case .bigNumber:
            guard Self.isBigNumber(buffer, at: start, length: length) else {
                throw self.error(.invalidBigNumber, buffer, at: start - 1)
            }
        default:
            break
        }
    }

    private func error(_ code: RESPParsingError.Code, _ buffer: ByteBuffer, at index: Int) -> RESPParsingError {
        let length = min(32, buffer.writerIndex - index)
        let excerpt = length > 0 ? buffer.getBytes(at: index, length: length) ?? [] : []
        return RESPParsingError(code, offset: index - buffer.readerIndex, excerpt: excerpt)
    }

    // MARK: - Number parsing shared with RESPToken

    /// Parses a length or count: a non-negative decimal, or exactly `-1`.
    static func parseLength(_ buffer: ByteBuffer, at index: Int, length: Int) -> Int? {
        // One pass over the raw bytes: a length is parsed for every element of every reply, and
        // byte-by-byte `getInteger` calls cost several times more (most of all in debug builds).
        buffer.withUnsafeReadableBytes { raw in Self.parseLength(raw, at: index - buffer.readerIndex, length: length) }
    }

    /// Parses a length from `raw[offset..<offset + length]`.
    static func parseLength(_ raw: UnsafeRawBufferPointer, at offset: Int, length: Int) -> Int? {
        guard length > 0, length <= 18, offset >= 0, offset + length <= raw.count else { return nil }
        if length == 2, raw[offset] == UInt8(ascii: "-"), raw[offset + 1] == UInt8(ascii: "1") { return -1 }
        var value = 0
        for i in offset..<(offset + length) {
            let byte = raw[i]
            guard byte >= 0x30, byte <= 0x39 else { return nil }
            value = value * 10 + Int(byte &- 0x30)
        }
        return value
    }

    /// Parses a signed 64-bit decimal integer.
    static func parseInt64(_ buffer: ByteBuffer, at index: Int, length: Int) -> Int64? {
        guard length > 0, length <= 20, let bytes = buffer.viewBytes(at: index, length: length) else { return nil }
        var iterator = bytes.makeIterator()
        var negative = false
        var digits = 0
        var value: Int64 = 0
        var first = true
        while let byte = iterator.next() {
            if first, byte == UInt8(ascii: "-") || byte == UInt8(ascii: "+") {
                negative = byte == UInt8(ascii: "-")
                first = false
                continue
            }
            first = false
            guard byte >= 0x30, byte <= 0x39 else { return nil }
            let digit = Int64(byte - 0x30)
            let (times, o1) = value.multipliedReportingOverflow(by: 10)
            let (sum, o2) = negative ? times.subtractingReportingOverflow(digit) : times.addingReportingOverflow(digit)
            guard !o1, !o2 else { return nil }
            value = sum
            digits += 1
        }
        return digits > 0 ? value : nil
    }

    /// Parses a RESP3 double: a decimal with optional exponent, `inf`, `-inf` or `nan`.
    static func parseDouble(_ buffer: ByteBuffer, at index: Int, length: Int) -> Double? {
        guard length > 0, length <= 64, let bytes = buffer.getBytes(at: index, length: length) else { return nil }
        let text = String(decoding: bytes, as: UTF8.self)
        switch text.lowercased() {
        case "inf", "+inf": return .infinity
        case "-inf": return -.infinity
        case "nan", "-nan": return .nan
        default: break
        }
        // Accept only the grammar RESP allows: [sign] digits [. digits] [e [sign] digits].
        var sawDigit = false
        var sawDot = false
        var sawExp = false
        var previous: UInt8 = 0
        for (offset, byte) in bytes.enumerated() {
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"):
                sawDigit = true
            case UInt8(ascii: "-"), UInt8(ascii: "+"):
                guard offset == 0 || previous == UInt8(ascii: "e") || previous == UInt8(ascii: "E") else { return nil }
            case UInt8(ascii: "."):
                guard !sawDot, !sawExp else { return nil }
                sawDot = true
            case UInt8(ascii: "e"), UInt8(ascii: "E"):
                guard sawDigit, !sawExp else { return nil }
                sawExp = true
                sawDigit = false
            default:
                return nil
            }
            previous = byte
        }
        guard sawDigit else { return nil }
        return Double(text)
    }

    static func isBigNumber(_ buffer: ByteBuffer, at index: Int, length: Int) -> Bool {
        guard length > 0, let bytes = buffer.viewBytes(at: index, length: length) else { return false }
        var digits = 0
        for (offset, byte) in bytes.enumerated() {
            if offset == 0, byte == UInt8(ascii: "-") || byte == UInt8(ascii: "+") { continue }
            guard byte >= 0x30, byte <= 0x39 else { return false }
            digits += 1
        }
        return digits > 0
    }
}
