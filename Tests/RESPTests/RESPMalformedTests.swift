import NIOCore
import Testing

@testable import RESP

@Suite("RESP malformed input")
struct RESPMalformedTests {
    static let malformed: [(String, RESPParsingError.Code)] = [
        ("?what\r\n", .invalidTypeIdentifier),
        ("hello\r\n", .invalidTypeIdentifier),
        (":12a\r\n", .invalidInteger),
        (":\r\n", .invalidInteger),
        (":99999999999999999999\r\n", .invalidInteger),
        (":-\r\n", .invalidInteger),
        ("$abc\r\n", .invalidLength),
        ("$-2\r\n", .invalidLength),
        ("$\r\n", .invalidLength),
        ("*-5\r\n", .invalidLength),
        ("~-1\r\n", .invalidLength),
        ("$3\r\nabcde\r\n", .missingCRLF),
        ("+OK\rX", .missingCRLF),
        ("+OK\nmore", .missingCRLF),
        (",1.2.3\r\n", .invalidDouble),
        (",abc\r\n", .invalidDouble),
        (",\r\n", .invalidDouble),
        ("#x\r\n", .invalidBoolean),
        ("#tt\r\n", .invalidBoolean),
        ("(12a\r\n", .invalidBigNumber),
        ("_x\r\n", .invalidNull),
        ("=2\r\nab\r\n", .invalidVerbatimString),
        ("=5\r\ntxtab\r\n", .invalidVerbatimString),
        ("$99999999999999999999\r\n", .invalidLength),
        ("*1234567890123456789012345\r\n", .invalidLength),
    ]

    @Test("each malformed input gives its typed error", arguments: malformed)
    func malformedInput(input: String, code: RESPParsingError.Code) {
        var buffer = ByteBuffer(string: input)
        var decoder = RESPTokenDecoder()
        #expect(throws: RESPParsingError.self) { _ = try decoder.decode(buffer: &buffer) }
        do {
            _ = try decoder.decode(buffer: &buffer)
            Issue.record("no error for \(input.debugDescription)")
        } catch {
            #expect(error.code == code, "\(input.debugDescription): \(error)")
        }
    }

    @Test("truncated input waits for more bytes and never reports a value", arguments: RESPDecoderTests.samples)
    func truncated(input: String, expected: Model) throws {
        let bytes = Array(input.utf8)
        for cut in 0..<bytes.count {
            var buffer = ByteBuffer(bytes: bytes[..<cut])
            var decoder = RESPTokenDecoder()
            #expect(try decoder.decode(buffer: &buffer) == nil)
            #expect(throws: RESPParsingError.self) { _ = try RESPToken(validating: ByteBuffer(bytes: bytes[..<cut])) }
        }
    }

    @Test("nesting deeper than the limit is refused")
    func depth() {
        let limits = RESPDecoderLimits(maxDepth: 8)
        let nine = String(repeating: "*1\r\n", count: 9) + ":1\r\n"
        let eight = String(repeating: "*1\r\n", count: 8) + ":1\r\n"
        var decoder = RESPTokenDecoder(limits: limits)
        var ok = ByteBuffer(string: eight)
        #expect((try? decoder.decode(buffer: &ok)) != nil)
        var bad = ByteBuffer(string: nine)
        decoder = RESPTokenDecoder(limits: limits)
        #expect(throws: RESPParsingError(.depthExceeded, offset: 32, excerpt: Array("*1\r\n:1\r\n".utf8))) {
            _ = try decoder.decode(buffer: &bad)
        }
        // A million nested arrays do not blow the stack: the default limit stops them early.
        var deep = ByteBuffer(string: String(repeating: "*1\r\n", count: 1_000_000))
        var defaultDecoder = RESPTokenDecoder()
        #expect(throws: RESPParsingError.self) { _ = try defaultDecoder.decode(buffer: &deep) }
    }

    @Test("oversized bulk strings, aggregates and values are refused before buffering them")
    func oversized() {
        let limits = RESPDecoderLimits(maxDepth: 4, maxBulkLength: 16, maxAggregateCount: 10, maxTokenBytes: 64)
        func code(_ input: String) -> RESPParsingError.Code? {
            var decoder = RESPTokenDecoder(limits: limits)
            var buffer = ByteBuffer(string: input)
            do {
                _ = try decoder.decode(buffer: &buffer)
                return nil
            } catch {
                return error.code
            }
        }
        #expect(code("$17\r\n") == .bulkTooLong)
        #expect(code("$536870912\r\n") == .bulkTooLong)
        #expect(code("+" + String(repeating: "a", count: 40)) == .bulkTooLong)
        #expect(code("*11\r\n") == .aggregateTooLarge)
        #expect(code("%6\r\n") == .aggregateTooLarge)
        #expect(code("*5\r\n" + String(repeating: "$16\r\naaaaaaaaaaaaaaaa\r\n", count: 2) + "$16\r\n") == .tokenTooLarge)
        #expect(code("$16\r\naaaaaaaaaaaaaaaa\r\n") == nil)
    }

    @Test("10 000 random valid values round-trip, split at a random point")
    func randomRoundTrip() throws {
        var rng = SplitMix(seed: 0x5EED)
        for _ in 0..<10_000 {
            let model = Model.random(depth: 3, using: &rng)
            let bytes = model.bytes
            let cut = Int.random(in: 0...bytes.count, using: &rng)
            var decoder = RESPTokenDecoder()
            var buffer = ByteBuffer(bytes: bytes[..<cut])
            var token = try decoder.decode(buffer: &buffer)
            if token == nil {
                buffer.writeBytes(bytes[cut...])
                token = try decoder.decode(buffer: &buffer)
            }
            let decoded = try #require(token)
            #expect(Model(decoded) == model, "\(model)")
        }
    }

    @Test("10 000 random corruptions either decode, wait, or throw a typed error")
    func randomCorruption() {
        var rng = SplitMix(seed: 0xBAD)
        var outcomes = (decoded: 0, waiting: 0, rejected: 0)
        for _ in 0..<10_000 {
            var bytes = Model.random(depth: 3, using: &rng).bytes
            for _ in 0..<Int.random(in: 1...3, using: &rng) {
                let at = Int.random(in: 0..<bytes.count, using: &rng)
                switch Int.random(in: 0...2, using: &rng) {
                case 0: bytes[at] = UInt8.random(in: 0...255, using: &rng)
                case 1: bytes.remove(at: at)
                default: bytes.insert(Array("\r\n*$:-%>".utf8).randomElement(using: &rng)!, at: at)
                }
                if bytes.isEmpty { bytes = [0x2A] }
            }
            var decoder = RESPTokenDecoder(limits: RESPDecoderLimits(maxDepth: 8, maxBulkLength: 1 << 16, maxAggregateCount: 1 << 10, maxTokenBytes: 1 << 20))
            var buffer = ByteBuffer(bytes: bytes)
            do {
                if let token = try decoder.decode(buffer: &buffer) {
                    // Whatever decoded must be fully readable.
                    _ = Model(token)
                    outcomes.decoded += 1
                } else {
                    outcomes.waiting += 1
                }
            } catch {
                outcomes.rejected += 1
            }
        }
        #expect(outcomes.decoded + outcomes.waiting + outcomes.rejected == 10_000)
        #expect(outcomes.rejected > 1000)
    }
}
