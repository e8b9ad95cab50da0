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
    public struct Arguments: Sendable {
        var scratch: ByteBuffer
        var count = 0

        /// Appends a text argument (as UTF-8).
        public mutating func append(_ text: some StringProtocol) {
            let utf8 = text.utf8
            self.header(utf8.count)
            self.scratch.writeBytes(utf8)
            self.scratch.writeStaticString("\r\n")
        }

        /// Appends raw bytes.
        public mutating func append(_ bytes: ByteBuffer) {
            self.header(bytes.readableBytes)
            self.scratch.writeImmutableBuffer(bytes)
            self.scratch.writeStaticString("\r\n")
        }

        /// Appends raw bytes.
        public mutating func append(bytes: some Collection<UInt8>) {
            self.header(bytes.count)
            self.scratch.writeBytes(bytes)
            self.scratch.writeStaticString("\r\n")
        }

        /// Appends an integer in decimal.
        public mutating func append(_ value: Int) {
            self.append(String(value))
        }

        /// Appends an integer in decimal.
        public mutating func append(_ value: Int64) {
            self.append(String(value))
        }

        /// Appends each element in order.
        public mutating func append(contentsOf values: some Sequence<String>) {
            for value in values { self.append(value) }
        }

        mutating func header(_ length: Int) {
            self.count += 1
            self.scratch.writeInteger(UInt8(ascii: "$"))
            self.scratch.writeString(String(length))
            self.scratch.writeStaticString("\r\n")
        }
    }

    /// Creates an encoder.
    /// - Parameter allocator: where buffers come from (use the channel's).
    public init(allocator: ByteBufferAllocator = ByteBufferAllocator()) {
        self.buffer = allocator.buffer(capacity: 256)
        self.arguments = Arguments(scratch: allocator.buffer(capacity: 256))
    }

    /// Encodes one command whose arguments `body` appends.
    public mutating func command(_ body: (inout Arguments) throws -> Void) rethrows {
        self.arguments.scratch.clear()
        self.arguments.count = 0
        try body(&self.arguments)
        self.buffer.writeInteger(UInt8(ascii: "*"))
        self.buffer.writeString(String(self.arguments.count))
        self.buffer.writeStaticString("\r\n")
        self.buffer.writeImmutableBuffer(self.arguments.scratch)
    }

    /// Encodes one command made of text arguments.
    public mutating func command(_ parts: String...) {
        self.command { args in
            for part in parts { args.append(part) }
        }
    }
}
