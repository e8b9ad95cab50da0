/// Bounds on what an envelope may carry.
public struct EnvelopeLimits: Sendable, Hashable {
    /// The largest payload, in bytes of JSON text. Default 1 MiB.
    public var maxPayloadBytes: Int
    /// The deepest nesting of arrays and objects in the payload. Default 32.
    public var maxPayloadDepth: Int

    /// Creates limits.
    public init(maxPayloadBytes: Int = 1 << 20, maxPayloadDepth: Int = 32) {
        self.maxPayloadBytes = maxPayloadBytes
        self.maxPayloadDepth = maxPayloadDepth
    }

    /// The defaults.
    public static let `default` = EnvelopeLimits()
}

/// Why an entry could not be decoded; the ``reason`` is what goes into the DLQ's `dlq_error`.
public struct EnvelopeDecodingError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The machine-readable reason.
    public struct Reason: Sendable, Hashable, CustomStringConvertible {
        /// The text, such as `unknown_event_type`.
        public let rawValue: String
        /// `event_type` is not a declared type.
        public static let unknownEventType = Reason(rawValue: "unknown_event_type")
        /// A required field is absent.
        public static let missingField = Reason(rawValue: "missing_field")
        /// `payload` is not JSON.
        public static let invalidJSON = Reason(rawValue: "invalid_json")
        /// `payload` is JSON but not an object.
        public static let payloadNotObject = Reason(rawValue: "payload_not_object")
        /// `payload` is over the size limit.
        public static let payloadTooLarge = Reason(rawValue: "payload_too_large")
        /// `payload` is nested deeper than the limit.
        public static let payloadTooDeep = Reason(rawValue: "payload_too_deep")
        /// `priority` is not `low`, `normal`, `high` or `critical`.
        public static let invalidPriority = Reason(rawValue: "invalid_priority")
        /// `timestamp` is not ISO-8601.
        public static let invalidTimestamp = Reason(rawValue: "invalid_timestamp")
        /// `seq` is not a non-negative integer.
        public static let invalidSeq = Reason(rawValue: "invalid_seq")
        /// `schema_version` is not a positive integer.
        public static let invalidSchemaVersion = Reason(rawValue: "invalid_schema_version")
        public var description: String { self.rawValue }
    }

    /// Why.
    public var reason: Reason
    /// Details for people (which field, what value).
    public var detail: String
    /// The entry's raw fields, as received.
    public var fields: [StreamField]

    public var description: String { "\(self.reason): \(self.detail)" }

    /// `reason: detail`, the text of a DLQ entry's `dlq_error`.
    public var dlqError: String { self.description }
}

extension Envelope {
    /// Decodes a stream entry.
    ///
    /// - Parameters:
    ///   - fields: the entry's fields in order.
    ///   - stream: the stream it was read from (used to derive a message id when absent).
    ///   - entryID: the entry id (likewise).
    ///   - limits: payload size and depth limits.
    /// - Throws: ``EnvelopeDecodingError`` with the raw fields and a reason.
    public init(
        decoding fields: [StreamField],
        stream: String? = nil,
        entryID: String? = nil,
        limits: EnvelopeLimits = .default
    ) throws(EnvelopeDecodingError) {
        func fail(_ reason: EnvelopeDecodingError.Reason, _ detail: String) -> EnvelopeDecodingError {
            EnvelopeDecodingError(reason: reason, detail: detail, fields: fields)
        }
        var values = KnownFieldValues()
        var extra: [StreamField] = []
        for field in fields {
            if let slot = KnownFieldValues.slot(field.name) {
                if values.slots[slot] == nil { values.slots[slot] = field.value }
            } else {
                extra.append(field)
            }
        }
        for slot in KnownFieldValues.eventType...KnownFieldValues.project where values.slots[slot] == nil {
            throw fail(.missingField, "the entry has no \(KnownFieldValues.names[slot]) field")
        }
        let eventTypeText = values.slots[KnownFieldValues.eventType]!
        guard let eventType = EventType.byRawValue[eventTypeText] else {
            throw fail(.unknownEventType, "\"\(eventTypeText.prefix(100))\" is not a declared event type")
        }
        let payloadText = values.slots[KnownFieldValues.payload]!
        guard payloadText.utf8.count <= limits.maxPayloadBytes else {
            throw fail(.payloadTooLarge, "the payload has \(payloadText.utf8.count) bytes; the limit is \(limits.maxPayloadBytes)")
        }
        guard let payload = JSONValue(jsonText: payloadText, maxDepth: limits.maxPayloadDepth + 1) else {
            if JSONValue(jsonText: payloadText) != nil {
                throw fail(.payloadTooDeep, "the payload nests deeper than \(limits.maxPayloadDepth) levels")
            }
            throw fail(.invalidJSON, "the payload is not JSON: \(payloadText.prefix(80))")
        }
        guard case .object(let object) = payload else {
            throw fail(.payloadNotObject, "the payload is JSON but not an object")
        }
        guard payload.depth <= limits.maxPayloadDepth else {
            throw fail(.payloadTooDeep, "the payload nests \(payload.depth) levels; the limit is \(limits.maxPayloadDepth)")
        }
        var priority = Priority.normal
        if let text = values["priority"], !text.isEmpty {
            guard let parsed = Priority(rawValue: text) ?? Priority(rawValue: text.lowercased()) else {
                throw fail(.invalidPriority, "\"\(text.prefix(40))\" is not low, normal, high or critical")
            }
            priority = parsed
        }
        var timestamp: WaveTimestamp? = nil
        if let text = values["timestamp"], !text.isEmpty {
            guard let parsed = WaveTimestamp(parsing: text) else {
                throw fail(.invalidTimestamp, "\"\(text.prefix(40))\" is not an ISO-8601 timestamp")
            }
            timestamp = parsed
        }
        var seq: UInt64? = nil
        if let text = values["seq"], !text.isEmpty {
            guard let parsed = UInt64(text) else { throw fail(.invalidSeq, "\"\(text.prefix(40))\" is not a non-negative integer") }
            seq = parsed
        }
        var schemaVersion: Int? = nil
        if let text = values["schema_version"], !text.isEmpty {
            guard let parsed = Int(text), parsed > 0 else {
                throw fail(.invalidSchemaVersion, "\"\(text.prefix(40))\" is not a positive integer")
            }
            schemaVersion = parsed
        }
        let messageID: String
        let derived: Bool
        if let given = values["message_id"], !given.isEmpty {
            messageID = given
            derived = false
        } else {
            messageID = Self.derivedMessageID(stream: stream ?? "", entryID: entryID ?? "")
            derived = true
        }
        func optional(_ name: String) -> String? {
            guard let value = values[name], !value.isEmpty else { return nil }
            return value
        }
        self.init(
            eventType: eventType, payload: object, source: values["source"]!, project: values["project"]!,
            priority: priority, messageID: messageID, timestamp: timestamp, sessionID: optional("session_id"),
            storyID: optional("story_id"), correlationID: optional("correlation_id"), seq: seq,
            schemaVersion: schemaVersion, extraFields: extra
        )
        self.messageIDDerived = derived
    }

    /// A stable UUID-shaped id for an entry that carried no `message_id`: the same stream and
    /// entry id always give the same id, so a redelivery is recognised as a duplicate.
    public static func derivedMessageID(stream: String, entryID: String) -> String {
        func fnv1a(_ text: String, basis: UInt64) -> UInt64 {
            var hash = basis
            for byte in text.utf8 {
                hash ^= UInt64(byte)
                hash = hash &* 0x0000_0100_0000_01B3
            }
            return hash
        }
        let key = "\(stream)|\(entryID)"
        let high = fnv1a(key, basis: 0xCBF2_9CE4_8422_2325)
        let low = fnv1a(key, basis: 0x84222325_CBF29CE4)
        // Version nibble 8 (custom), RFC 4122 variant.
        let a = (high & 0xFFFF_FFFF_FFFF_0FFF) | 0x0000_0000_0000_8000
        let b = (low & 0x3FFF_FFFF_FFFF_FFFF) | 0x8000_0000_0000_0000
        return MessageID.format(a, b)
    }
}

/// The values of the known envelope fields, found by a switch on the name instead of hashing.
struct KnownFieldValues {
    static let eventType = 0
    static let payload = 1
    static let source = 2
    static let project = 3
    static let names = [
        "event_type", "payload", "source", "project", "priority", "message_id", "timestamp",
        "session_id", "story_id", "correlation_id", "seq", "schema_version",
    ]

    var slots: [String?] = Array(repeating: nil, count: 12)

    /// The slot of a known field name; the length narrows the comparisons to at most three.
    static func slot(_ name: String) -> Int? {
        switch name.utf8.count {
        case 3: name == "seq" ? 10 : nil
        case 6: name == "source" ? 2 : nil
        case 7: name == "payload" ? 1 : name == "project" ? 3 : nil
        case 8: name == "priority" ? 4 : name == "story_id" ? 8 : nil
        case 9: name == "timestamp" ? 6 : nil
        case 10: name == "event_type" ? 0 : name == "message_id" ? 5 : name == "session_id" ? 7 : nil
        case 14: name == "correlation_id" ? 9 : name == "schema_version" ? 11 : nil
        default: nil
        }
    }

    subscript(name: String) -> String? {
        Self.slot(name).flatMap { self.slots[$0] }
    }
}
