/// The first byte of every RESP value, naming its type.
///
/// RESP2 uses the first five; RESP3 adds the rest.
public enum RESPTypeIdentifier: UInt8, Sendable, CaseIterable {
    case simpleString = 0x2B  // +
    case simpleError = 0x2D  // -
    case integer = 0x3A  // :
    case bulkString = 0x24  // $
    case array = 0x2A  // *
    case null = 0x5F  // _
    case boolean = 0x23  // #
    case double = 0x2C  // ,
    case bigNumber = 0x28  // (
    case bulkError = 0x21  // !
    case verbatimString = 0x3D  // =
    case map = 0x25  // %
    case attribute = 0x7C  // |
    case set = 0x7E  // ~
    case push = 0x3E  // >

    /// Whether values of this type hold other values.
    public var isAggregate: Bool {
        switch self {
        case .array, .map, .attribute, .set, .push: true
        default: false
        }
    }

    /// Whether the value is a single CRLF-terminated line after the type byte.
    var isLine: Bool {
        switch self {
        case .simpleString, .simpleError, .integer, .null, .boolean, .double, .bigNumber: true
        default: false
        }
    }

    /// Whether the value is a length-prefixed blob.
    var isBlob: Bool {
        switch self {
        case .bulkString, .bulkError, .verbatimString: true
        default: false
        }
    }

    /// How many child values each counted element stands for (maps and attributes hold pairs).
    var childrenPerElement: Int {
        switch self {
        case .map, .attribute: 2
        default: 1
        }
    }
}
