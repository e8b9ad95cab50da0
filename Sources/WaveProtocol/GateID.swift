/// One of the eight fixed gates, `gate-0` … `gate-7`.
public struct GateID: Hashable, Sendable, Comparable, CustomStringConvertible, Codable {
    /// 0 … 7.
    public let number: Int

    /// The gates in order.
    public static let all: [GateID] = (0...7).map { GateID(uncheckedNumber: $0) }
    /// The first gate.
    public static let first = GateID(uncheckedNumber: 0)
    /// The last gate; passing it completes the story.
    public static let last = GateID(uncheckedNumber: 7)

    private init(uncheckedNumber: Int) { self.number = uncheckedNumber }

    /// A gate by number.
    /// - Throws: ``WaveProtocolError`` outside 0 … 7.
    public init(_ number: Int) throws(WaveProtocolError) {
        guard (0...7).contains(number) else { throw WaveProtocolError(.invalidGate, "gate \(number) does not exist (gate-0 … gate-7)") }
        self.number = number
    }

    /// Parses `gate-N` (also `N` and `gate_N`, case-insensitive).
    /// - Throws: ``WaveProtocolError`` for anything else.
    public init(parsing text: String) throws(WaveProtocolError) {
        let lower = text.lowercased()
        var digits = Substring(lower)
        if digits.hasPrefix("gate-") || digits.hasPrefix("gate_") { digits = digits.dropFirst(5) }
        guard let number = Int(digits), (0...7).contains(number) else {
            throw WaveProtocolError(.invalidGate, "\"\(text)\" is not a gate (gate-0 … gate-7)")
        }
        self.number = number
    }

    /// The gate after this one, or `nil` after gate-7.
    public var next: GateID? { self.number < 7 ? GateID(uncheckedNumber: self.number + 1) : nil }

    public var description: String { "gate-\(self.number)" }

    public static func < (a: GateID, b: GateID) -> Bool { a.number < b.number }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        self = try GateID(parsing: text)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(self.description)
    }
}
