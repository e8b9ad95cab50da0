/// Bounds that the RESP decoder enforces, so that no input, however hostile, makes it use
/// unbounded memory or recurse without end.
///
/// The defaults suit Redis replies in Wave: streams entries and small maps. Raise them for
/// workloads that read very large values.
public struct RESPDecoderLimits: Sendable, Hashable {
    /// The deepest nesting of aggregates (arrays, maps, sets, pushes, attributes) accepted.
    /// Default 32.
    public var maxDepth: Int
    /// The longest bulk string, bulk error or verbatim string accepted, in bytes. Also bounds the
    /// length of a simple line. Default 64 MiB.
    public var maxBulkLength: Int
    /// The most elements one aggregate may declare (a map's pairs count twice). Default 1 048 576.
    public var maxAggregateCount: Int
    /// The most bytes one complete top-level value may take. Default 256 MiB.
    public var maxTokenBytes: Int

    /// Creates limits.
    /// - Parameters:
    ///   - maxDepth: deepest aggregate nesting.
    ///   - maxBulkLength: longest blob or line, in bytes.
    ///   - maxAggregateCount: most children of one aggregate.
    ///   - maxTokenBytes: most bytes of one top-level value.
    public init(
        maxDepth: Int = 32,
        maxBulkLength: Int = 64 << 20,
        maxAggregateCount: Int = 1 << 20,
        maxTokenBytes: Int = 256 << 20
    ) {
        self.maxDepth = maxDepth
        self.maxBulkLength = maxBulkLength
        self.maxAggregateCount = maxAggregateCount
        self.maxTokenBytes = maxTokenBytes
    }

    /// The default limits.
    public static let `default` = RESPDecoderLimits()
}
