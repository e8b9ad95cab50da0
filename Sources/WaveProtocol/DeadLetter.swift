/// A dead letter: the original entry's fields plus why and where it failed (`WIRE.md`, Dead
/// letters). `dlq_error` and `dlq_original_id` are the reference's; the others are Wave's.
public struct DeadLetter: Hashable, Sendable {
    /// The original fields, unknown ones included, in order.
    public var originalFields: [StreamField]
    /// Why it was dead-lettered (`unknown_event_type: …`, `handler failed 5 times: …`).
    public var error: String
    /// The entry id in its source stream.
    public var originalID: String
    /// The stream it came from.
    public var sourceStream: String
    /// The group that read it.
    public var group: String
    /// How many times it was delivered.
    public var deliveryCount: Int
    /// When it was dead-lettered.
    public var failedAt: WaveTimestamp

    /// The names of the fields a dead letter adds.
    public static let dlqFieldNames: Set<String> = [
        "dlq_error", "dlq_original_id", "dlq_source_stream", "dlq_group", "dlq_delivery_count", "dlq_failed_at",
    ]

    /// Creates a dead letter.
    public init(
        originalFields: [StreamField], error: String, originalID: String, sourceStream: String, group: String, deliveryCount: Int,
        failedAt: WaveTimestamp = .now()
    ) {
        self.originalFields = originalFields.filter { !Self.dlqFieldNames.contains($0.name) }
        self.error = error
        self.originalID = originalID
        self.sourceStream = sourceStream
        self.group = group
        self.deliveryCount = deliveryCount
        self.failedAt = failedAt
    }

    /// The DLQ entry's fields: the original ones, then the `dlq_*` ones.
    public var fields: [StreamField] {
        self.originalFields + [
            StreamField("dlq_error", self.error),
            StreamField("dlq_original_id", self.originalID),
            StreamField("dlq_source_stream", self.sourceStream),
            StreamField("dlq_group", self.group),
            StreamField("dlq_delivery_count", String(self.deliveryCount)),
            StreamField("dlq_failed_at", self.failedAt.description),
        ]
    }

    /// Reads a DLQ entry. Entries written by the reference (only `dlq_error` and
    /// `dlq_original_id`) are accepted; the missing parts are empty.
    public init(decoding fields: [StreamField]) {
        var values: [String: String] = [:]
        for field in fields where Self.dlqFieldNames.contains(field.name) { values[field.name] = field.value }
        self.originalFields = fields.filter { !Self.dlqFieldNames.contains($0.name) }
        self.error = values["dlq_error"] ?? ""
        self.originalID = values["dlq_original_id"] ?? ""
        self.sourceStream = values["dlq_source_stream"] ?? ""
        self.group = values["dlq_group"] ?? ""
        self.deliveryCount = Int(values["dlq_delivery_count"] ?? "") ?? 0
        self.failedAt = values["dlq_failed_at"].flatMap(WaveTimestamp.init(parsing:)) ?? WaveTimestamp(microsecondsSinceEpoch: 0)
    }
}
