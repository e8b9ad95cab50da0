import Synchronization

/// UUID-shaped message ids, lower-case: random (version 4) or time-ordered (version 7). Wave's
/// own envelopes carry time-ordered ones, so that the processed-message ledger, keyed by them,
/// appends to its index instead of writing a random page of it per message.
///
/// Drawn from a xoshiro256** generator seeded once from the system's random source: a system
/// call per id (what `UUID()` costs on Linux) was a measurable part of publishing.
public enum MessageID {
    private static let generator = Mutex(Xoshiro256(seed: SystemRandomNumberGenerator()))

    /// A new random id.
    public static func make() -> String {
        let (high, low) = Self.generator.withLock { ($0.next(), $0.next()) }
        let a = (high & 0xFFFF_FFFF_FFFF_0FFF) | 0x0000_0000_0000_4000
        let b = (low & 0x3FFF_FFFF_FFFF_FFFF) | 0x8000_0000_0000_0000
        return Self.format(a, b)
    }

    /// A new time-ordered id (version 7: 48 bits of Unix milliseconds, then random bits): ids made
    /// later sort later, so rows keyed by them are appended to an index instead of scattered
    /// through it.
    public static func makeTimeOrdered(millisecondsSinceEpoch: Int64) -> String {
        let (high, low) = Self.generator.withLock { ($0.next(), $0.next()) }
        let a = (UInt64(truncatingIfNeeded: millisecondsSinceEpoch) << 16) | 0x7000 | (high & 0x0FFF)
        let b = (low & 0x3FFF_FFFF_FFFF_FFFF) | 0x8000_0000_0000_0000
        return Self.format(a, b)
    }

    /// A new time-ordered id (version 7) for now.
    public static func makeTimeOrdered() -> String {
        self.makeTimeOrdered(millisecondsSinceEpoch: WaveTimestamp.now().millisecondsSinceEpoch)
    }

    /// Formats 128 bits as `8-4-4-4-12` lower-case hex.
    static func format(_ a: UInt64, _ b: UInt64) -> String {
        let digits: [UInt8] = Array("0123456789abcdef".utf8)
        return String(unsafeUninitializedCapacity: 36) { buffer in
            var i = 0
            func put(_ value: UInt64, _ nibbles: Int) {
                for shift in stride(from: (nibbles - 1) * 4, through: 0, by: -4) {
                    buffer[i] = digits[Int((value >> UInt64(shift)) & 0xF)]
                    i += 1
                }
            }
            func dash() {
                buffer[i] = UInt8(ascii: "-")
                i += 1
            }
            put(a >> 32, 8)
            dash()
            put((a >> 16) & 0xFFFF, 4)
            dash()
            put(a & 0xFFFF, 4)
            dash()
            put(b >> 48, 4)
            dash()
            put(b & 0xFFFF_FFFF_FFFF, 12)
            return 36
        }
    }
}

/// xoshiro256**: a fast generator with 256 bits of state.
struct Xoshiro256: RandomNumberGenerator, Sendable {
    var s: (UInt64, UInt64, UInt64, UInt64)

    init(seed: some RandomNumberGenerator) {
        var seed = seed
        self.s = (seed.next(), seed.next(), seed.next(), seed.next() | 1)
    }

    mutating func next() -> UInt64 {
        let result = ((self.s.1 &* 5) << 7 | (self.s.1 &* 5) >> 57) &* 9
        let t = self.s.1 << 17
        self.s.2 ^= self.s.0
        self.s.3 ^= self.s.1
        self.s.1 ^= self.s.2
        self.s.0 ^= self.s.3
        self.s.2 ^= t
        self.s.3 = self.s.3 << 45 | self.s.3 >> 19
        return result
    }
}
