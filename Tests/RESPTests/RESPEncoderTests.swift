import NIOCore
import Testing

@testable import RESP

@Suite("RESP command encoder")
struct RESPEncoderTests {
    @Test("commands are arrays of bulk strings with exact lengths")
    func encodes() {
        var encoder = RESPCommandEncoder()
        encoder.command("SET", "key", "välue")
        encoder.command { args in
            args.append("XADD")
            args.append("s")
            args.append(42)
            args.append(ByteBuffer(bytes: [0, 13, 10]))
        }
        #expect(String(buffer: encoder.buffer) == "*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$6\r\nvälue\r\n*4\r\n$4\r\nXADD\r\n$1\r\ns\r\n$2\r\n42\r\n$3\r\n\0\r\n\r\n")
    }

    @Test("what the encoder writes, the decoder reads back")
    func roundTrip() throws {
        var encoder = RESPCommandEncoder()
        encoder.command("EVAL", "return 1", "0", "")
        let token = try RESPToken(validating: encoder.buffer)
        let parts = try [String](fromRESP: token)
        #expect(parts == ["EVAL", "return 1", "0", ""])
    }
}
