import Foundation

/// A project name as it appears in Redis keys: trimmed, lower-cased, `[a-z0-9._-]+`, and not one
/// of the reserved words `global` and `active` (they would collide with `wave:system:global`,
/// `wave:emergency:global` and `wave:emergency:active`).
///
/// The envelope keeps the caller's spelling; comparisons use this normalized form.
public struct ProjectName: Hashable, Sendable, CustomStringConvertible, Codable {
    /// The normalized name used in keys.
    public let key: String

    /// Names that would collide with fixed keys.
    public static let reserved: Set<String> = ["global", "active"]

    /// Normalizes and validates a project name.
    /// - Throws: ``WaveProtocolError`` naming the rule that was broken.
    public init(_ name: String) throws(WaveProtocolError) {
        let normalized = name.trimmingCharacters(in: .whitespacesAndNewlines).lowercased()
        guard !normalized.isEmpty else {
            throw WaveProtocolError(.invalidProject, "the project name is empty")
        }
        guard normalized.utf8.allSatisfy({ Self.allowed($0) }) else {
            throw WaveProtocolError(
                .invalidProject,
                "project \"\(name)\" is not allowed: after trimming and lower-casing it must match [a-z0-9._-]+"
            )
        }
        guard !Self.reserved.contains(normalized) else {
            throw WaveProtocolError(.invalidProject, "project \"\(name)\" is reserved (global and active name fixed keys)")
        }
        self.key = normalized
    }

    /// Whether two spellings name the same project.
    public static func same(_ a: String, _ b: String) -> Bool {
        (try? ProjectName(a)) == (try? ProjectName(b)) && (try? ProjectName(a)) != nil
    }

    public var description: String { self.key }

    private static func allowed(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
            UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "-"):
            true
        default:
            false
        }
    }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        self = try ProjectName(text)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(self.key)
    }
}
