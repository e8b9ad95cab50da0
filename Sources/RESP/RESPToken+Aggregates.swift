import NIOCore

extension RESPToken {
    /// The elements of an array, set or push, decoded one at a time.
    public struct Array: Sequence, Hashable, Sendable {
        /// The number of elements.
        public let count: Int
        /// The bytes of the elements.
        public let buffer: ByteBuffer

        init(count: Int, buffer: ByteBuffer) {
            self.count = count
            self.buffer = buffer
        }

        /// Whether there are no elements.
        public var isEmpty: Bool { self.count == 0 }

        public func makeIterator() -> Iterator {
            Iterator(buffer: self.buffer)
        }

        /// Iterates the elements, skipping attributes between them.
        public struct Iterator: IteratorProtocol {
            var buffer: ByteBuffer

            public mutating func next() -> RESPToken? {
                while self.buffer.readableBytes > 0 {
                    let isAttribute =
                        self.buffer.getInteger(at: self.buffer.readerIndex, as: UInt8.self)
                        == RESPTypeIdentifier.attribute.rawValue
                    let length = RESPToken.length(of: self.buffer, at: self.buffer.readerIndex)
                    let slice = self.buffer.readSlice(length: length)!
                    if !isAttribute { return RESPToken(validated: slice) }
                }
                return nil
            }
        }

        /// The elements as an array of tokens.
        public var elements: [RESPToken] { Swift.Array(self) }
    }

    /// The key-value pairs of a map or attribute, decoded one pair at a time.
    public struct Map: Sequence, Hashable, Sendable {
        /// The number of pairs.
        public let count: Int
        /// The bytes of the pairs.
        public let buffer: ByteBuffer

        init(count: Int, buffer: ByteBuffer) {
            self.count = count
            self.buffer = buffer
        }

        public func makeIterator() -> Iterator {
            Iterator(base: Array.Iterator(buffer: self.buffer))
        }

        /// Iterates the pairs.
        public struct Iterator: IteratorProtocol {
            var base: Array.Iterator

            public mutating func next() -> (key: RESPToken, value: RESPToken)? {
                guard let key = self.base.next(), let value = self.base.next() else { return nil }
                return (key, value)
            }
        }

        /// The value of the first pair whose key is the string `key`.
        public subscript(key: String) -> RESPToken? {
            for (k, v) in self where k.stringValue == key { return v }
            return nil
        }
    }

    /// The value's text when it is a simple, bulk or verbatim string; otherwise `nil`.
    public var stringValue: String? {
        switch self.value {
        case .simpleString(let b), .bulkString(let b), .verbatimString(_, let b): String(buffer: b)
        default: nil
        }
    }
}
