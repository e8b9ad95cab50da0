import NIOCore

/// Writes commands as RESP arrays of bulk strings, the only form Redis accepts from clients.
///
/// Arguments are written to a reusable scratch buffer while they are counted, then the array
/// header and the arguments are appended to ``buffer``; after warm-up no allocation happens per
/// command.
///
/// ```swift
/// var encoder = RESPCommandEncoder()
/// encoder.command { args in
///     args.append("SET"); args.append("k"); args.append("v")
/// }
/// ```
public struct RESPCommandEncoder: Sendable {
    /// The encoded commands.
    public var buffer: ByteBuffer
    private var arguments: Arguments

    /// The arguments of one command.
    ///
    /// Arguments go to a plain byte array (one capacity check per append, no buffer bookkeeping)
    /// and reach ``RESPCommandEncoder/buffer`` in one copy once they are counted.
    public struct Arguments: Sendable {
        var scratch: [UInt8]
        var count = 0

        /// Appends a text argument (as UTF-8).
        public mutating func append(_ text: String) {
            var text = text
            text.withUTF8 { self.append(raw: $0) }
        }

        /// Appends a text argument (as UTF-8).
        public mutating func append(_ text: Substring) {
            var text = text
            text.withUTF8 { self.append(raw: $0) }
        }

        /// Appends raw bytes.
        public mutating func append(_ bytes: ByteBuffer) {
            bytes.withUnsafeReadableBytes { raw in
                self.append(raw: UnsafeBufferPointer(start: raw.baseAddress?.assumingMemoryBound(to: UInt8.self), count: raw.count))
            }
        }

        /// Appends raw bytes.
        public mutating func append(bytes: some Collection<UInt8>) {
            self.header(bytes.count)
            self.scratch.append(contentsOf: bytes)
            self.scratch.append(13)
            self.scratch.append(10)
        }

        private mutating func append(raw bytes: UnsafeBufferPointer<UInt8>) {
            self.header(bytes.count)
            self.scratch.append(contentsOf: bytes)
            self.scratch.append(13)
            self.scratch.append(10)
        }

        /// Appends an integer in decimal.
        public mutating func append(_ value: Int) {
            self.append(Int64(value))
        }

        /// Appends an integer in decimal.
        public mutating func append(_ value: Int64) {
            var magnitude = value.magnitude
            var length = value < 0 ? 1 : 0
            repeat {
                length += 1
                magnitude /= 10
            } while magnitude > 0
            self.header(length)
            if value < 0 { self.scratch.append(UInt8(ascii: "-")) }
            self.scratch.appendDecimal(value.magnitude)
            self.scratch.append(13)
            self.scratch.append(10)
        }

        /// Appends each element in order.
        public mutating func append(contentsOf values: some Sequence<String>) {
            for value in values { self.append(value) }
        }

        mutating func header(_ length: Int) {
            self.count += 1
            self.scratch.append(UInt8(ascii: "$"))
            self.scratch.appendDecimal(UInt64(length))
            self.scratch.append(13)
            self.scratch.append(10)
        }
    }

    /// Creates an encoder.
    /// - Parameter allocator: where buffers come from (use the channel's).
    public init(allocator: ByteBufferAllocator = ByteBufferAllocator()) {
        self.buffer = allocator.buffer(capacity: 256)
        var scratch: [UInt8] = []
        scratch.reserveCapacity(512)
        self.arguments = Arguments(scratch: scratch)
    }

    /// Encodes one command whose arguments `body` appends.
    public mutating func command(_ body: (inout Arguments) throws -> Void) rethrows {
        self.arguments.scratch.removeAll(keepingCapacity: true)
        self.arguments.count = 0
        try body(&self.arguments)
        self.buffer.writeInteger(UInt8(ascii: "*"))
        self.buffer.writeDecimal(UInt64(self.arguments.count))
        self.buffer.writeStaticString("\r\n")
        self.buffer.writeBytes(self.arguments.scratch)
    }

    /// Encodes one command made of text arguments.
    public mutating func command(_ parts: String...) {
        self.command { args in
            for part in parts { args.append(part) }
        }
    }
}

extension ByteBuffer {
    /// Writes a non-negative integer in decimal, without allocating.
    mutating func writeDecimal(_ value: UInt64) {
        if value < 10 {
            self.writeInteger(UInt8(truncatingIfNeeded: value) &+ 0x30)
            return
        }
        var digits:
            (
                UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8
            ) =
                (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var count = 0
        var remaining = value
        withUnsafeMutableBytes(of: &digits) { raw in
            while remaining > 0 {
                raw[19 - count] = UInt8(truncatingIfNeeded: remaining % 10) &+ 0x30
                remaining /= 10
                count += 1
            }
            self.writeBytes(UnsafeRawBufferPointer(rebasing: raw[(20 - count)...]))
        }
    }
}

extension Array where Element == UInt8 {
    /// Appends a non-negative integer in decimal, without allocating.
    mutating func appendDecimal(_ value: UInt64) {
        if value < 10 {
            self.append(UInt8(truncatingIfNeeded: value) &+ 0x30)
            return
        }
        var divisor: UInt64 = 10
        while divisor <= value / 10 { divisor *= 10 }
        var remaining = value
        while divisor > 0 {
            self.append(UInt8(truncatingIfNeeded: remaining / divisor) &+ 0x30)
            remaining %= divisor
            divisor /= 10
        }
    }
}
