import RESP
import WaveProtocol
import WaveRedis

/// One entry as the bus reads it: fields straight into ``StreamField``s.
struct BusReadEntry: Sendable {
    var id: String
    var fields: [StreamField]
    /// Deleted while pending (Redis returns the id with no fields).
    var isDeleted: Bool
}

/// `XREADGROUP` whose reply is read in one pass (``RESPCursor``) straight into the bus's field
/// values, with no intermediate entry type: this is the consumer's hot path.
struct EnvelopeReadGroup: RedisCommand {
    typealias Response = [(stream: String, entries: [BusReadEntry])]
    var base: XReadGroupCommand

    var blockingTimeout: Duration? { self.base.blockingTimeout }

    func encode(into arguments: inout RESPCommandEncoder.Arguments) {
        self.base.encode(into: &arguments)
    }

    /// Reads a RESP3 map `{stream: entries}` or a RESP2 array `[[stream, entries], …]`; a null
    /// (a `BLOCK` that timed out) is no entries.
    func decode(_ token: RESPToken) throws(RESPDecodeError) -> Response {
        var cursor = RESPCursor(token)
        switch cursor.peekType() {
        case .null?, nil:
            return []
        case .map?:
            let count = try cursor.readMapHeader() ?? 0
            var streams: Response = []
            streams.reserveCapacity(count)
            for _ in 0..<count { streams.append((try cursor.readString(), try Self.entries(&cursor))) }
            return streams
        default:
            let count = try cursor.readArrayHeader() ?? 0
            var streams: Response = []
            streams.reserveCapacity(count)
            for _ in 0..<count {
                var probe = cursor
                guard try cursor.readArrayHeader() == 2 else {
                    throw RESPDecodeError(.invalidValue, expected: "[stream, entries]", token: probe.readToken() ?? .null)
                }
                streams.append((try cursor.readString(), try Self.entries(&cursor)))
            }
            return streams
        }
    }

    static func entries(_ cursor: inout RESPCursor) throws(RESPDecodeError) -> [BusReadEntry] {
        guard let count = try cursor.readArrayHeader() else { return [] }
        var entries: [BusReadEntry] = []
        entries.reserveCapacity(count)
        for _ in 0..<count {
            var probe = cursor
            guard try cursor.readArrayHeader() == 2 else {
                throw RESPDecodeError(.invalidValue, expected: "[id, fields]", token: probe.readToken() ?? .null)
            }
            let id = try cursor.readString()
            guard let pairs = try cursor.readMapHeader() else {
                entries.append(BusReadEntry(id: id, fields: [], isDeleted: true))
                continue
            }
            var fields: [StreamField] = []
            fields.reserveCapacity(pairs)
            for _ in 0..<pairs { fields.append(StreamField(try cursor.readString(), try cursor.readString())) }
            entries.append(BusReadEntry(id: id, fields: fields, isDeleted: false))
        }
        return entries
    }
}
