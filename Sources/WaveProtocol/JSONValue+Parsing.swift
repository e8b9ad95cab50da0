/// A small, strict JSON reader and writer for payloads: faster than Foundation's coders on
/// Linux, with a nesting bound so that hostile input cannot exhaust the stack.
enum JSONText {
    struct Failure: Error {}

    /// Parses a complete JSON text; `nil` if it is not JSON or nests deeper than `maxDepth`.
    static func parse(_ text: some StringProtocol, maxDepth: Int = 512) -> JSONValue? {
        var copy = String(text)
        return copy.withUTF8 { bytes -> JSONValue? in
            var parser = Parser(bytes: bytes, maxDepth: maxDepth)
            do {
                parser.skipWhitespace()
                let value = try parser.value(depth: 0)
                parser.skipWhitespace()
                guard parser.index == bytes.count else { return nil }
                return value
            } catch {
                return nil
            }
        }
    }

    struct Parser {
        let bytes: UnsafeBufferPointer<UInt8>
        let maxDepth: Int
        var index = 0

        init(bytes: UnsafeBufferPointer<UInt8>, maxDepth: Int) {
            self.bytes = bytes
            self.maxDepth = maxDepth
        }

        mutating func skipWhitespace() {
            while self.index < self.bytes.count {
                switch self.bytes[self.index] {
                case 0x20, 0x09, 0x0A, 0x0D: self.index += 1
                default: return
                }
            }
        }

        mutating func value(depth: Int) throws -> JSONValue {
            guard self.index < self.bytes.count else { throw Failure() }
            switch self.bytes[self.index] {
            case UInt8(ascii: "{"):
                guard depth < self.maxDepth else { throw Failure() }
                self.index += 1
                var object: [String: JSONValue] = [:]
                self.skipWhitespace()
                if self.peek(UInt8(ascii: "}")) { return .object(object) }
                while true {
                    self.skipWhitespace()
                    guard self.peek(UInt8(ascii: "\""), consume: false) else { throw Failure() }
                    let key = try self.string()
                    self.skipWhitespace()
                    guard self.peek(UInt8(ascii: ":")) else { throw Failure() }
                    self.skipWhitespace()
                    object[key] = try self.value(depth: depth + 1)
                    self.skipWhitespace()
                    if self.peek(UInt8(ascii: ",")) { continue }
                    guard self.peek(UInt8(ascii: "}")) else { throw Failure() }
                    return .object(object)
                }
            case UInt8(ascii: "["):
                guard depth < self.maxDepth else { throw Failure() }
                self.index += 1
                var array: [JSONValue] = []
                self.skipWhitespace()
                if self.peek(UInt8(ascii: "]")) { return .array(array) }
                while true {
                    self.skipWhitespace()
                    array.append(try self.value(depth: depth + 1))
                    self.skipWhitespace()
                    if self.peek(UInt8(ascii: ",")) { continue }
                    guard self.peek(UInt8(ascii: "]")) else { throw Failure() }
                    return .array(array)
                }
            case UInt8(ascii: "\""):
                return .string(try self.string())
            case UInt8(ascii: "t"):
                try self.literal("true")
                return .bool(true)
            case UInt8(ascii: "f"):
                try self.literal("false")
                return .bool(false)
            case UInt8(ascii: "n"):
                try self.literal("null")
                return .null
            default:
                return .number(try self.number())
            }
        }

        mutating func peek(_ byte: UInt8, consume: Bool = true) -> Bool {
            guard self.index < self.bytes.count, self.bytes[self.index] == byte else { return false }
            if consume { self.index += 1 }
            return true
        }

        mutating func literal(_ word: StaticString) throws {
            let count = word.utf8CodeUnitCount
            guard self.index + count <= self.bytes.count else { throw Failure() }
            for i in 0..<count where self.bytes[self.index + i] != word.utf8Start[i] { throw Failure() }
            self.index += count
        }

        mutating func number() throws -> Double {
            let start = self.index
            if self.peek(UInt8(ascii: "-")) {}
            guard self.index < self.bytes.count else { throw Failure() }
            if self.bytes[self.index] == UInt8(ascii: "0") {
                self.index += 1
            } else {
                guard self.digits() > 0 else { throw Failure() }
            }
            if self.peek(UInt8(ascii: ".")) { guard self.digits() > 0 else { throw Failure() } }
            if self.peek(UInt8(ascii: "e")) || self.peek(UInt8(ascii: "E")) {
                if !self.peek(UInt8(ascii: "+")) { _ = self.peek(UInt8(ascii: "-")) }
                guard self.digits() > 0 else { throw Failure() }
            }
            let text = String(decoding: UnsafeBufferPointer(rebasing: self.bytes[start..<self.index]), as: UTF8.self)
            guard let value = Double(text) else { throw Failure() }
            return value
        }

        mutating func digits() -> Int {
            var count = 0
            while self.index < self.bytes.count, self.bytes[self.index] >= 0x30, self.bytes[self.index] <= 0x39 {
                self.index += 1
                count += 1
            }
            return count
        }

        mutating func string() throws -> String {
            self.index += 1  // opening quote
            let start = self.index
            // Fast path: no escapes.
            while self.index < self.bytes.count {
                let byte = self.bytes[self.index]
                if byte == UInt8(ascii: "\"") {
                    let text = String(decoding: UnsafeBufferPointer(rebasing: self.bytes[start..<self.index]), as: UTF8.self)
                    self.index += 1
                    return text
                }
                if byte == UInt8(ascii: "\\") { break }
                guard byte >= 0x20 else { throw Failure() }
                self.index += 1
            }
            var scalars = String.UnicodeScalarView()
            scalars.append(contentsOf: String(decoding: UnsafeBufferPointer(rebasing: self.bytes[start..<self.index]), as: UTF8.self).unicodeScalars)
            var pending: [UInt8] = []
            func flush() {
                if !pending.isEmpty {
                    scalars.append(contentsOf: String(decoding: pending, as: UTF8.self).unicodeScalars)
                    pending.removeAll()
                }
            }
            while self.index < self.bytes.count {
                let byte = self.bytes[self.index]
                self.index += 1
                switch byte {
                case UInt8(ascii: "\""):
                    flush()
                    return String(scalars)
                case UInt8(ascii: "\\"):
                    flush()
                    guard self.index < self.bytes.count else { throw Failure() }
                    let escape = self.bytes[self.index]
                    self.index += 1
                    switch escape {
                    case UInt8(ascii: "\""): scalars.append("\"")
                    case UInt8(ascii: "\\"): scalars.append("\\")
                    case UInt8(ascii: "/"): scalars.append("/")
                    case UInt8(ascii: "b"): scalars.append("\u{08}")
                    case UInt8(ascii: "f"): scalars.append("\u{0C}")
                    case UInt8(ascii: "n"): scalars.append("\n")
                    case UInt8(ascii: "r"): scalars.append("\r")
                    case UInt8(ascii: "t"): scalars.append("\t")
                    case UInt8(ascii: "u"):
                        var code = try self.hex4()
                        if (0xD800...0xDBFF).contains(code) {
                            guard self.peek(UInt8(ascii: "\\")), self.peek(UInt8(ascii: "u")) else { throw Failure() }
                            let low = try self.hex4()
                            guard (0xDC00...0xDFFF).contains(low) else { throw Failure() }
                            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                        } else if (0xDC00...0xDFFF).contains(code) {
                            throw Failure()
                        }
                        guard let scalar = Unicode.Scalar(code) else { throw Failure() }
                        scalars.append(scalar)
                    default:
                        throw Failure()
                    }
                default:
                    guard byte >= 0x20 else { throw Failure() }
                    pending.append(byte)
                }
            }
            throw Failure()
        }

        mutating func hex4() throws -> UInt32 {
            guard self.index + 4 <= self.bytes.count else { throw Failure() }
            var value: UInt32 = 0
            for _ in 0..<4 {
                let byte = self.bytes[self.index]
                self.index += 1
                let digit: UInt32
                switch byte {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(byte - 0x30)
                case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(byte - 0x61 + 10)
                case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(byte - 0x41 + 10)
                default: throw Failure()
                }
                value = value * 16 + digit
            }
            return value
        }
    }

    /// Compact JSON with sorted keys, as UTF-8 bytes.
    static func write(_ value: JSONValue, into output: inout [UInt8]) {
        switch value {
        case .null: output.append(contentsOf: "null".utf8)
        case .bool(let b): output.append(contentsOf: (b ? "true" : "false").utf8)
        case .number(let n):
            if n.isFinite, n == n.rounded(), abs(n) < 9e15 {
                output.append(contentsOf: String(Int64(n)).utf8)
            } else if n.isFinite {
                output.append(contentsOf: "\(n)".utf8)
            } else {
                output.append(contentsOf: "null".utf8)
            }
        case .string(let s): self.writeString(s, into: &output)
        case .array(let array):
            output.append(UInt8(ascii: "["))
            for (i, element) in array.enumerated() {
                if i > 0 { output.append(UInt8(ascii: ",")) }
                self.write(element, into: &output)
            }
            output.append(UInt8(ascii: "]"))
        case .object(let object):
            output.append(UInt8(ascii: "{"))
            var first = true
            for (key, member) in object.sorted(by: { $0.key < $1.key }) {
                if !first { output.append(UInt8(ascii: ",")) }
                first = false
                self.writeString(key, into: &output)
                output.append(UInt8(ascii: ":"))
                self.write(member, into: &output)
            }
            output.append(UInt8(ascii: "}"))
        }
    }

    static func writeString(_ text: String, into output: inout [UInt8]) {
        output.append(UInt8(ascii: "\""))
        var text = text
        text.withUTF8 { bytes in
            var plainFrom = 0
            for (index, byte) in bytes.enumerated() where byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") {
                output.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[plainFrom..<index]))
                plainFrom = index + 1
                switch byte {
                case UInt8(ascii: "\""): output.append(contentsOf: "\\\"".utf8)
                case UInt8(ascii: "\\"): output.append(contentsOf: "\\\\".utf8)
                case UInt8(ascii: "\n"): output.append(contentsOf: "\\n".utf8)
                case UInt8(ascii: "\r"): output.append(contentsOf: "\\r".utf8)
                case UInt8(ascii: "\t"): output.append(contentsOf: "\\t".utf8)
                default:
                    let hex: [UInt8] = Array("0123456789abcdef".utf8)
                    output.append(contentsOf: "\\u00".utf8)
                    output.append(hex[Int(byte >> 4)])
                    output.append(hex[Int(byte & 0xF)])
                }
            }
            output.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[plainFrom...]))
        }
        output.append(UInt8(ascii: "\""))
    }
}
