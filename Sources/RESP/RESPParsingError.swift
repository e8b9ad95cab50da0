import NIOCore

/// A malformed or over-limit RESP input.
///
/// Every way in which bytes from a server can be wrong has its own ``Code``; the error also
/// carries the byte offset (from the start of the value being decoded) where it was found and a
/// short excerpt of the offending bytes for logs.
public struct RESPParsingError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What was wrong.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        enum Base: Sendable, Hashable {
            case invalidTypeIdentifier
            case invalidLength
            case invalidInteger
            case invalidDouble
            case invalidBoolean
            case invalidBigNumber
            case invalidNull
            case invalidVerbatimString
            case missingCRLF
            case depthExceeded
            case bulkTooLong
            case aggregateTooLarge
            case tokenTooLarge
        }
        let base: Base
        /// The first byte is not a RESP type.
        public static let invalidTypeIdentifier = Code(base: .invalidTypeIdentifier)
        /// A length or count is not a non-negative decimal (or -1 where RESP2 allows a null).
        public static let invalidLength = Code(base: .invalidLength)
        /// An integer value is not a signed 64-bit decimal.
        public static let invalidInteger = Code(base: .invalidInteger)
        /// A double value is not a decimal, `inf`, `-inf` or `nan`.
        public static let invalidDouble = Code(base: .invalidDouble)
        /// A boolean is not `t` or `f`.
        public static let invalidBoolean = Code(base: .invalidBoolean)
        /// A big number is not an optionally signed run of digits.
        public static let invalidBigNumber = Code(base: .invalidBigNumber)
        /// A null carries data.
        public static let invalidNull = Code(base: .invalidNull)
        /// A verbatim string lacks its three-letter format and colon.
        public static let invalidVerbatimString = Code(base: .invalidVerbatimString)
        /// A line or blob is not terminated by CRLF where it must be.
        public static let missingCRLF = Code(base: .missingCRLF)
        /// Aggregates are nested deeper than ``RESPDecoderLimits/maxDepth``.
        public static let depthExceeded = Code(base: .depthExceeded)
        /// A blob or line is longer than ``RESPDecoderLimits/maxBulkLength``.
        public static let bulkTooLong = Code(base: .bulkTooLong)
        /// An aggregate declares more than ``RESPDecoderLimits/maxAggregateCount`` elements.
        public static let aggregateTooLarge = Code(base: .aggregateTooLarge)
        /// One value is larger than ``RESPDecoderLimits/maxTokenBytes``.
        public static let tokenTooLarge = Code(base: .tokenTooLarge)

        public var description: String { "\(self.base)" }
    }

    /// What was wrong.
    public var code: Code
    /// Byte offset, from the start of the top-level value, where the problem was found.
    public var offset: Int
    /// Up to 32 bytes of the input at the offset, for diagnostics.
    public var excerpt: [UInt8]

    /// Creates an error.
    public init(_ code: Code, offset: Int, excerpt: [UInt8] = []) {
        self.code = code
        self.offset = offset
        self.excerpt = excerpt
    }

    public var description: String {
        let text = String(decoding: self.excerpt, as: UTF8.self)
            .replacingCRLF()
        return "RESP parsing error \(self.code) at byte \(self.offset): \"\(text)\""
    }
}

extension String {
    fileprivate func replacingCRLF() -> String {
        var out = ""
        for ch in self.unicodeScalars {
            switch ch {
            case "\r": out += "\\r"
            case "\n": out += "\\n"
            default: out.unicodeScalars.append(ch)
            }
        }
        return out
    }
}
