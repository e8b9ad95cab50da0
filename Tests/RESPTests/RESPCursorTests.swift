import NIOCore
import Testing

@testable import RESP

@Suite("RESP cursor")
struct RESPCursorTests {
    func token(_ text: String) throws -> RESPToken {
        try RESPToken(validating: ByteBuffer(string: text))
    }

    @Test("reads a RESP3 stream reply front to back: map, arrays, strings")
    func streamReply() throws {
        let reply = "%1\r\n$2\r\ns1\r\n*2\r\n*2\r\n$3\r\n1-0\r\n*4\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n$0\r\n\r\n*2\r\n$3\r\n2-0\r\n_\r\n"
        var cursor = RESPCursor(try self.token(reply))
        #expect(cursor.peekType() == .map)
        #expect(try cursor.readMapHeader() == 1)
        #expect(try cursor.readString() == "s1")
        #expect(try cursor.readArrayHeader() == 2)
        #expect(try cursor.readArrayHeader() == 2)
        #expect(try cursor.readString() == "1-0")
        #expect(try cursor.readMapHeader() == 2)  // a flat array of 4 read as 2 pairs
        #expect(try [cursor.readString(), cursor.readString(), cursor.readString(), cursor.readString()] == ["a", "b", "c", ""])
        #expect(try cursor.readArrayHeader() == 2)
        #expect(try cursor.readString() == "2-0")
        #expect(try cursor.readMapHeader() == nil)  // deleted while pending
        #expect(cursor.isAtEnd)
    }

    @Test("scalars as text; nulls of both protocols; verbatim strings without their format")
    func scalars() throws {
        var cursor = RESPCursor(try self.token("*7\r\n+OK\r\n:42\r\n,1.5\r\n$-1\r\n_\r\n=7\r\ntxt:abc\r\n(123\r\n"))
        #expect(try cursor.readArrayHeader() == 7)
        #expect(try cursor.readString() == "OK")
        #expect(try cursor.readString() == "42")
        #expect(try cursor.readString() == "1.5")
        #expect(try cursor.readOptionalString() == nil)
        #expect(try cursor.readOptionalString() == nil)
        #expect(try cursor.readString() == "abc")
        #expect(try cursor.readString() == "123")
        #expect(cursor.isAtEnd)
        #expect(try RESPCursor(self.token("*-1\r\n")).readingArrayHeader() == nil)
    }

    @Test("attributes before a value are skipped; skipValue and readToken step over whole aggregates")
    func attributesAndSkipping() throws {
        var cursor = RESPCursor(try self.token("*3\r\n|1\r\n+ttl\r\n:3\r\n$1\r\nx\r\n*2\r\n*1\r\n:1\r\n%1\r\n+k\r\n+v\r\n+end\r\n"))
        #expect(try cursor.readArrayHeader() == 3)
        #expect(try cursor.readString() == "x")
        var copy = cursor
        cursor.skipValue()
        #expect(try cursor.readString() == "end")
        let read = copy.readToken()
        let nested = try #require(read)
        #expect(nested.type == .array)
        #expect(try nested.elements().count == 2)
        #expect(nested.base.readableBytes == "*2\r\n*1\r\n:1\r\n%1\r\n+k\r\n+v\r\n".utf8.count)
        #expect(copy.readToken() != nil)
        #expect(copy.readToken() == nil)
    }

    @Test("a value of the wrong type is an error that carries it, and the cursor stays before it")
    func wrongType() throws {
        var cursor = RESPCursor(try self.token("*2\r\n*1\r\n:1\r\n$-1\r\n"))
        #expect(try cursor.readArrayHeader() == 2)
        let error = try #require(throws: RESPDecodeError.self) { try cursor.readString() }
        #expect(error.code == .unexpectedType)
        #expect(error.token.type == .array)
        #expect(try cursor.readArrayHeader() == 1)  // still there
        #expect(throws: RESPDecodeError.self) { try cursor.readMapHeader() }  // an integer is not a map
        #expect(try cursor.readString() == "1")
        let null = try #require(throws: RESPDecodeError.self) { try cursor.readString() }
        #expect(null.token.isNull)
        #expect(throws: RESPDecodeError.self) { try RESPCursor(self.token("*3\r\n:1\r\n:2\r\n:3\r\n")).readingMapHeader() }  // odd flat map
    }
}

extension RESPCursor {
    /// `readArrayHeader()` on a copy (for one-line expectations).
    func readingArrayHeader() throws(RESPDecodeError) -> Int? {
        var copy = self
        return try copy.readArrayHeader()
    }

    /// `readMapHeader()` on a copy.
    func readingMapHeader() throws(RESPDecodeError) -> Int? {
        var copy = self
        return try copy.readMapHeader()
    }
}
