import NIOCore

@testable import RESP

/// A plain model of RESP values for tests: encodes itself and can be read back from a token.
indirect enum Model: Equatable, CustomStringConvertible {
    case simple(String)
    case error(String)
    case int(Int64)
    case bulk([UInt8])
    case null
    case bool(Bool)
    case double(Double)
    case bigNumber(String)
    case bulkError([UInt8])
    case verbatim(String, [UInt8])
    case array([Model])
    case set([Model])
    case push([Model])
    case map([Model])  // flattened pairs

    var description: String { String(decoding: self.bytes, as: UTF8.self) }

    var bytes: [UInt8] {
        func line(_ type: String, _ text: String) -> [UInt8] { Array((type + text + "\r\n").utf8) }
        func blob(_ type: String, _ body: [UInt8]) -> [UInt8] {
            Array((type + String(body.count) + "\r\n").utf8) + body + Array("\r\n".utf8)
        }
        func agg(_ type: String, _ count: Int, _ items: [Model]) -> [UInt8] {
            Array((type + String(count) + "\r\n").utf8) + items.flatMap(\.bytes)
        }
        switch self {
        case .simple(let s): return line("+", s)
        case .error(let s): return line("-", s)
        case .int(let i): return line(":", String(i))
        case .bulk(let b): return blob("$", b)
        case .null: return line("_", "")
        case .bool(let b): return line("#", b ? "t" : "f")
        case .double(let d):
            if d.isNaN { return line(",", "nan") }
            if d == .infinity { return line(",", "inf") }
            if d == -.infinity { return line(",", "-inf") }
            return line(",", "\(d)")
        case .bigNumber(let s): return line("(", s)
        case .bulkError(let b): return blob("!", b)
        case .verbatim(let f, let b): return blob("=", Array((f + ":").utf8) + b)
        case .array(let a): return agg("*", a.count, a)
        case .set(let a): return agg("~", a.count, a)
        case .push(let a): return agg(">", a.count, a)
        case .map(let a): return agg("%", a.count / 2, a)
        }
    }

    var buffer: ByteBuffer { ByteBuffer(bytes: self.bytes) }

    init(_ token: RESPToken) {
        switch token.value {
        case .simpleString(let b): self = .simple(String(buffer: b))
        case .simpleError(let b): self = .error(String(buffer: b))
        case .integer(let i): self = .int(i)
        case .bulkString(let b): self = .bulk(Array(b.readableBytesView))
        case .null: self = .null
        case .boolean(let b): self = .bool(b)
        case .double(let d): self = .double(d)
        case .bigNumber(let b): self = .bigNumber(String(buffer: b))
        case .bulkError(let b): self = .bulkError(Array(b.readableBytesView))
        case .verbatimString(let f, let t): self = .verbatim(f, Array(t.readableBytesView))
        case .array(let a): self = .array(a.map(Model.init))
        case .set(let a): self = .set(a.map(Model.init))
        case .push(let a): self = .push(a.map(Model.init))
        case .map(let m): self = .map(m.flatMap { [Model($0.key), Model($0.value)] })
        }
    }

    static func == (lhs: Model, rhs: Model) -> Bool {
        if case .double(let a) = lhs, case .double(let b) = rhs { return a == b || (a.isNaN && b.isNaN) }
        return lhs.bytes == rhs.bytes
    }
}

/// A small deterministic generator (SplitMix64), so failures reproduce from the seed.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { self.state = seed }
    mutating func next() -> UInt64 {
        self.state &+= 0x9E37_79B9_7F4A_7C15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

extension Model {
    static func random(depth: Int, using rng: inout SplitMix) -> Model {
        let text = { (rng: inout SplitMix) -> String in
            let letters = Array("abcXYZ 019:_-!é")
            return String((0..<Int.random(in: 0...12, using: &rng)).map { _ in letters.randomElement(using: &rng)! })
        }
        let bytes = { (rng: inout SplitMix) -> [UInt8] in
            (0..<Int.random(in: 0...40, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
        }
        let leafKinds = 10
        let kind = Int.random(in: 0..<(depth > 0 ? leafKinds + 5 : leafKinds), using: &rng)
        func children(_ rng: inout SplitMix, even: Bool = false) -> [Model] {
            var n = Int.random(in: 0...5, using: &rng)
            if even { n *= 2 }
            return (0..<n).map { _ in Model.random(depth: depth - 1, using: &rng) }
        }
        switch kind {
        case 0: return .simple(text(&rng))
        case 1: return .error("ERR " + text(&rng))
        case 2: return .int(Int64.random(in: Int64.min...Int64.max, using: &rng))
        case 3: return .bulk(bytes(&rng))
        case 4: return .null
        case 5: return .bool(Bool.random(using: &rng))
        case 6: return .double([1.5, -0.25, 3e10, .infinity, -.infinity, 0][Int.random(in: 0...5, using: &rng)])
        case 7: return .bigNumber("-" + String(UInt64.random(in: 0...UInt64.max, using: &rng)) + "123456789")
        case 8: return .bulkError(Array("SYNTAX ".utf8) + bytes(&rng))
        case 9: return .verbatim("txt", bytes(&rng))
        case 10, 11: return .array(children(&rng))
        case 12: return .set(children(&rng))
        case 13: return .push(children(&rng))
        default: return .map(children(&rng, even: true))
        }
    }
}
