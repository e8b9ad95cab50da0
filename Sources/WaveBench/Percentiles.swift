/// Latency samples and their percentiles.
public struct LatencySamples: Sendable {
    private var nanoseconds: [Int64] = []

    /// Creates an empty set, reserving room for `capacity` samples.
    public init(capacity: Int = 0) {
        self.nanoseconds.reserveCapacity(capacity)
    }

    /// Adds one sample.
    public mutating func record(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        self.nanoseconds.append(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }

    /// How many samples there are.
    public var count: Int { self.nanoseconds.count }

    /// The `p`-th percentile (0…100) in milliseconds, nearest-rank; 0 with no samples.
    public func percentileMilliseconds(_ p: Double) -> Double {
        guard !self.nanoseconds.isEmpty else { return 0 }
        let sorted = self.nanoseconds.sorted()
        let rank = Int((p / 100 * Double(sorted.count)).rounded(.up)) - 1
        return Double(sorted[min(max(rank, 0), sorted.count - 1)]) / 1_000_000
    }

    /// The largest sample in milliseconds.
    public var maxMilliseconds: Double { Double(self.nanoseconds.max() ?? 0) / 1_000_000 }
}

/// Rounds for printing: three significant decimals for small figures.
func rounded(_ value: Double, places: Int = 3) -> Double {
    var scale = 1.0
    for _ in 0..<places { scale *= 10 }
    return (value * scale).rounded() / scale
}
