/// Instants on the wire: ISO-8601, microsecond precision.
///
/// The reference writes naive UTC (`2026-01-27T17:07:26.123456`); Wave accepts that (as UTC), a
/// `Z` suffix and `±hh:mm` offsets, and always writes UTC with `Z`.
public struct WaveTimestamp: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// Microseconds since 1970-01-01T00:00:00Z.
    public var microsecondsSinceEpoch: Int64

    /// Creates an instant.
    public init(microsecondsSinceEpoch: Int64) {
        self.microsecondsSinceEpoch = microsecondsSinceEpoch
    }

    /// Milliseconds since the epoch (rounded down).
    public var millisecondsSinceEpoch: Int64 {
        self.microsecondsSinceEpoch >= 0 ? self.microsecondsSinceEpoch / 1000 : (self.microsecondsSinceEpoch - 999) / 1000
    }

    public static func < (a: WaveTimestamp, b: WaveTimestamp) -> Bool { a.microsecondsSinceEpoch < b.microsecondsSinceEpoch }

    /// This timestamp moved by `duration` (microsecond precision).
    public func adding(_ duration: Duration) -> WaveTimestamp {
        let (seconds, attoseconds) = duration.components
        return WaveTimestamp(microsecondsSinceEpoch: self.microsecondsSinceEpoch + seconds * 1_000_000 + attoseconds / 1_000_000_000_000)
    }

    /// The time from `other` to this one.
    public func duration(since other: WaveTimestamp) -> Duration {
        .microseconds(self.microsecondsSinceEpoch - other.microsecondsSinceEpoch)
    }

    /// Parses `YYYY-MM-DDTHH:MM:SS[.fraction][Z|±hh:mm|±hhmm]` (a space may replace the `T`).
    /// Returns `nil` for anything else.
    public init?(parsing text: String) {
        let bytes = Array(text.utf8)
        var i = 0
        func number(_ count: Int) -> Int? {
            guard i + count <= bytes.count else { return nil }
            var value = 0
            for _ in 0..<count {
                let b = bytes[i]
                guard b >= 0x30, b <= 0x39 else { return nil }
                value = value * 10 + Int(b - 0x30)
                i += 1
            }
            return value
        }
        func expect(_ byte: UInt8) -> Bool {
            guard i < bytes.count, bytes[i] == byte else { return false }
            i += 1
            return true
        }
        guard let year = number(4), expect(UInt8(ascii: "-")), let month = number(2), expect(UInt8(ascii: "-")),
            let day = number(2)
        else { return nil }
        guard i < bytes.count, bytes[i] == UInt8(ascii: "T") || bytes[i] == UInt8(ascii: " ") || bytes[i] == UInt8(ascii: "t") else { return nil }
        i += 1
        guard let hour = number(2), expect(UInt8(ascii: ":")), let minute = number(2), expect(UInt8(ascii: ":")),
            let second = number(2)
        else { return nil }
        var micros = 0
        if i < bytes.count, bytes[i] == UInt8(ascii: ".") {
            i += 1
            var digits = 0
            while i < bytes.count, bytes[i] >= 0x30, bytes[i] <= 0x39 {
                if digits < 6 { micros = micros * 10 + Int(bytes[i] - 0x30) }
                digits += 1
                i += 1
            }
            guard digits > 0 else { return nil }
            for _ in digits..<6 where digits < 6 { micros *= 10 }
        }
        var offsetSeconds = 0
        if i < bytes.count {
            if bytes[i] == UInt8(ascii: "Z") || bytes[i] == UInt8(ascii: "z") {
                i += 1
            } else if bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-") {
                let sign = bytes[i] == UInt8(ascii: "-") ? -1 : 1
                i += 1
                guard let hours = number(2) else { return nil }
                _ = expect(UInt8(ascii: ":"))
                guard let minutes = number(2), hours < 24, minutes < 60 else { return nil }
                offsetSeconds = sign * (hours * 3600 + minutes * 60)
            } else {
                return nil
            }
        }
        guard i == bytes.count else { return nil }
        guard (1...12).contains(month), (1...Self.daysIn(month: month, year: year)).contains(day), hour < 24, minute < 60, second < 61 else {
            return nil
        }
        let days = Self.daysFromCivil(year: year, month: month, day: day)
        let seconds = Int64(days) * 86_400 + Int64(hour * 3600 + minute * 60 + second - offsetSeconds)
        self.microsecondsSinceEpoch = seconds * 1_000_000 + Int64(micros)
    }

    /// `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
    public var description: String {
        let micros = ((self.microsecondsSinceEpoch % 1_000_000) + 1_000_000) % 1_000_000
        let seconds = (self.microsecondsSinceEpoch - micros) / 1_000_000
        let days = Int(seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400)
        let secondOfDay = Int(seconds - Int64(days) * 86_400)
        let (year, month, day) = Self.civilFromDays(days)
        return String(unsafeUninitializedCapacity: 27) { buffer in
            var i = 0
            func put(_ value: Int, width: Int, then separator: UInt8) {
                var remaining = max(0, value)
                for position in stride(from: width - 1, through: 0, by: -1) {
                    buffer[i + position] = UInt8(remaining % 10) + 0x30
                    remaining /= 10
                }
                i += width
                buffer[i] = separator
                i += 1
            }
            put(year, width: 4, then: UInt8(ascii: "-"))
            put(month, width: 2, then: UInt8(ascii: "-"))
            put(day, width: 2, then: UInt8(ascii: "T"))
            put(secondOfDay / 3600, width: 2, then: UInt8(ascii: ":"))
            put(secondOfDay / 60 % 60, width: 2, then: UInt8(ascii: ":"))
            put(secondOfDay % 60, width: 2, then: UInt8(ascii: "."))
            put(Int(micros), width: 6, then: UInt8(ascii: "Z"))
            return i
        }
    }

    static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    // Howard Hinnant's civil-date algorithms.
    static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    static func civilFromDays(_ days: Int) -> (Int, Int, Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }
}
