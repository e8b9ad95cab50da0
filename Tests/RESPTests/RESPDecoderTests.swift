import NIOCore
import Testing

@testable import RESP

@Suite("RESP decoder")
struct RESPDecoderTests {
    static let samples: [(String, Model)] = [
        ("+OK\r\n", .simple("OK")),
        ("+\r\n", .simple("")),
        ("-ERR unknown command\r\n", .error("ERR unknown command")),
        (":0\r\n", .int(0)),
        (":-9223372036854775808\r\n", .int(.min)),
        (":9223372036854775807\r\n", .int(.max)),
        (":+12\r\n", .int(12)),
        ("$5\r\nhello\r\n", .bulk(Array("hello".utf8))),
        ("$0\r\n\r\n", .bulk([])),
        ("$4\r\na\r\nb\r\n", .bulk(Array("a\r\nb".utf8))),
        ("$-1\r\n", .null),
        ("*-1\r\n", .null),
        ("_\r\n", .null),
        ("#t\r\n", .bool(true)),
        ("#f\r\n", .bool(false)),
        (",1.23\r\n", .double(1.23)),
        (",-4e3\r\n", .double(-4000)),
        (",inf\r\n", .double(.infinity)),
        (",-inf\r\n", .double(-.infinity)),
        (",nan\r\n", .double(.nan)),
        (",10\r\n", .double(10)),
        ("(3492890328409238509324850943850943825024385\r\n", .bigNumber("3492890328409238509324850943850943825024385")),
        ("!21\r\nSYNTAX invalid syntax\r\n", .bulkError(Array("SYNTAX invalid syntax".utf8))),
        ("=15\r\ntxt:Some string\r\n", .verbatim("txt", Array("Some string".utf8))),
        ("*0\r\n", .array([])),
        ("*2\r\n:1\r\n$1\r\nx\r\n", .array([.int(1), .bulk([0x78])])),
        ("*2\r\n*1\r\n:1\r\n*0\r\n", .array([.array([.int(1)]), .array([])])),
        ("~2\r\n+a\r\n+b\r\n", .set([.simple("a"), .simple("b")])),
        (">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n", .push([.bulk(Array("message".utf8)), .bulk(Array("ch".utf8)), .bulk(Array("hi".utf8))])),
        ("%2\r\n+first\r\n:1\r\n+second\r\n:2\r\n", .map([.simple("first"), .int(1), .simple("second"), .int(2)])),
        ("%0\r\n", .map([])),
        ("*3\r\n$-1\r\n*-1\r\n_\r\n", .array([.null, .null, .null])),
    ]

    @Test("decodes every RESP3 type", arguments: samples)
    func decodesEveryType(input: String, expected: Model) throws {
        var buffer = ByteBuffer(string: input)
        var decoder = RESPTokenDecoder()
        let token = try #require(try decoder.decode(buffer: &buffer))
        #expect(Model(token) == expected)
        #expect(buffer.readableBytes == 0)
        #expect(token.base.readableBytes == input.utf8.count)
    }

    @Test("a frame split at every byte boundary decodes the same", arguments: samples)
    func splitAtEveryBoundary(input: String, expected: Model) throws {
        let bytes = Array(input.utf8)
        for cut in 0...bytes.count {
            var decoder = RESPTokenDecoder()
            var buffer = ByteBuffer(bytes: bytes[..<cut])
            let early = try decoder.decode(buffer: &buffer)
            if cut < bytes.count {
                #expect(early == nil, "complete value reported after \(cut) of \(bytes.count) bytes")
                buffer.writeBytes(bytes[cut...])
                let token = try #require(try decoder.decode(buffer: &buffer))
                #expect(Model(token) == expected)
            } else {
                #expect(early.map(Model.init) == expected)
            }
            #expect(buffer.readableBytes == 0)
        }
    }

    @Test("fed one byte at a time, several values in a row all come out in order")
    func byteAtATime() throws {
        let all = Self.samples.flatMap { Array($0.0.utf8) }
        var decoder = RESPTokenDecoder()
        var buffer = ByteBuffer()
        var decoded: [Model] = []
        for byte in all {
            buffer.writeInteger(byte)
            while let token = try decoder.decode(buffer: &buffer) { decoded.append(Model(token)) }
        }
        #expect(decoded == Self.samples.map(\.1))
    }

    @Test("attributes annotate the following value and are skipped in aggregates")
    func attributes() throws {
        let input = "|1\r\n+key-popularity\r\n%1\r\n$1\r\na\r\n,0.19\r\n*2\r\n:2039123\r\n|1\r\n+ttl\r\n:3\r\n:9543892\r\n"
        var buffer = ByteBuffer(string: input)
        var decoder = RESPTokenDecoder()
        let token = try #require(try decoder.decode(buffer: &buffer))
        #expect(buffer.readableBytes == 0)
        #expect(Model(token) == .array([.int(2_039_123), .int(9_543_892)]))
        #expect(token.type == .array)
        let attributes = try #require(token.attributes)
        #expect(attributes.count == 1)
        #expect(attributes["key-popularity"] != nil)
    }

    @Test("pipelined replies in one buffer come out one by one")
    func pipelined() throws {
        var buffer = ByteBuffer(string: String(repeating: "+PONG\r\n", count: 1000) + "+PO")
        var decoder = RESPTokenDecoder()
        var count = 0
        while let token = try decoder.decode(buffer: &buffer) {
            #expect(token.stringValue == "PONG")
            count += 1
        }
        #expect(count == 1000)
        #expect(buffer.readableBytes == 3)
    }

    @Test("an incomplete aggregate keeps its progress instead of re-parsing from the start")
    func resumesWhereItStopped() throws {
        let elements = (0..<1000).map { Model.bulk(Array("entry-\($0)".utf8)) }
        let bytes = Model.array(elements).bytes
        var decoder = RESPTokenDecoder()
        var buffer = ByteBuffer(bytes: bytes[..<(bytes.count / 2)])
        #expect(try decoder.decode(buffer: &buffer) == nil)
        // The first half was validated once and is remembered.
        let progressAfterHalf = decoder.progress
        #expect(progressAfterHalf > bytes.count / 2 - 20)
        buffer.writeBytes(bytes[(bytes.count / 2)...])
        let token = try #require(try decoder.decode(buffer: &buffer))
        #expect(Model(token) == .array(elements))
        #expect(decoder.progress == 0)
    }
}
