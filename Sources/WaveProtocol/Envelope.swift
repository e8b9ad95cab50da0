import Foundation

/// One raw field of a stream entry.
public struct StreamField: Hashable, Sendable {
    /// The field name.
    public var name: String
    /// The value (every value on the wire is a string).
    public var value: String

    /// Creates a field.
    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }
}

/// A Wave message: one stream entry (`WIRE.md`, The envelope).
///
/// Decoding accepts everything the Python reference emits (naive timestamps, absent optional
/// fields, unknown extra fields, which are kept in ``extraFields``) and rejects what it must with
/// ``EnvelopeDecodingError``. Encoding writes the reference's field names and value formats, plus
/// `seq` and `schema_version` (`2`).
public struct Envelope: Hashable, Sendable {
    /// The event type.
    public var eventType: EventType
    /// The payload: a JSON object.
    public var payload: [String: JSONValue]
    /// Who published it (an agent id such as `BE-1`, or a component).
    public var source: String
    /// The project as the publisher spelled it.
    public var project: String
    /// How urgent it is. Default `normal`.
    public var priority: Priority
    /// The idempotency key: a UUID (derived from the stream and entry id when the entry had none).
    public var messageID: String
    /// Whether ``messageID`` was derived because the entry carried none.
    public var messageIDDerived: Bool
    /// When it was published, if the entry said.
    public var timestamp: WaveTimestamp?
    /// The session it concerns, if any.
    public var sessionID: String?
    /// The story it concerns, if any (see ``storyIDForRouting``).
    public var storyID: String?
    /// For a result signal: the `message_id` of the task it answers.
    public var correlationID: String?
    /// Strictly increasing per (story, source); lets the orchestrator reject stale signals (new).
    public var seq: UInt64?
    /// `2` for envelopes written by Wave; `nil` means the reference format (new).
    public var schemaVersion: Int?
    /// Fields this version does not know, kept in order so that copies (DLQ, replay) lose nothing.
    public var extraFields: [StreamField]

    /// The schema version Wave writes.
    public static let currentSchemaVersion = 2

    /// Creates an envelope as Wave publishes it: a new time-ordered message id, the current time, schema 2.
    public init(
        eventType: EventType,
        payload: [String: JSONValue] = [:],
        source: String,
        project: String,
        priority: Priority = .normal,
        messageID: String = MessageID.makeTimeOrdered(),
        timestamp: WaveTimestamp? = .now(),
        sessionID: String? = nil,
        storyID: String? = nil,
        correlationID: String? = nil,
        seq: UInt64? = nil,
        schemaVersion: Int? = Envelope.currentSchemaVersion,
        extraFields: [StreamField] = []
    ) {
        self.eventType = eventType
        self.payload = payload
        self.source = source
        self.project = project
        self.priority = priority
        self.messageID = messageID
        self.messageIDDerived = false
        self.timestamp = timestamp
        self.sessionID = sessionID
        self.storyID = storyID
        self.correlationID = correlationID
        self.seq = seq
        self.schemaVersion = schemaVersion
        self.extraFields = extraFields
    }

    /// The field names this version reads.
    public static let knownFields: Set<String> = [
        "event_type", "payload", "source", "project", "priority", "message_id", "timestamp",
        "session_id", "story_id", "correlation_id", "seq", "schema_version",
    ]

    /// The entry's fields, in the reference's order; optional fields are omitted when empty.
    public var fields: [StreamField] {
        var fields: [StreamField] = []
        fields.reserveCapacity(12 + self.extraFields.count)
        self.forEachField { fields.append(StreamField($0, $1)) }
        return fields
    }

    /// Calls `body` with each field of the entry, in order, without building an array (the
    /// publishing hot path).
    public func forEachField(_ body: (String, String) -> Void) {
        body("event_type", self.eventType.rawValue)
        body("payload", JSONValue.object(self.payload).jsonText)
        body("source", self.source)
        body("project", self.project)
        body("priority", self.priority.rawValue)
        body("message_id", self.messageID)
        if let timestamp { body("timestamp", timestamp.description) }
        if let sessionID, !sessionID.isEmpty { body("session_id", sessionID) }
        if let storyID, !storyID.isEmpty { body("story_id", storyID) }
        if let correlationID, !correlationID.isEmpty { body("correlation_id", correlationID) }
        if let seq { body("seq", String(seq)) }
        if let schemaVersion { body("schema_version", String(schemaVersion)) }
        for field in self.extraFields { body(field.name, field.value) }
    }

    /// The story a signal is for: the envelope's `story_id`, else the payload's.
    public var storyIDForRouting: String? {
        if let storyID, !storyID.isEmpty { return storyID }
        if let fromPayload = self.payload["story_id"]?.stringValue, !fromPayload.isEmpty { return fromPayload }
        return nil
    }

    /// The sender's agent id: `source`, else the payload's `agent_id`.
    public var agentID: String? {
        if !self.source.isEmpty { return self.source }
        return self.payload["agent_id"]?.stringValue
    }

    /// The sender's role (`WIRE.md`): the configured map's entry for the agent id, else the
    /// lower-cased prefix of the agent id before the first `-` (`CTO-1` → `cto`, `be-dev-1` → `be`).
    public func senderRole(roleMap: [String: String] = [:]) -> String? {
        guard let agentID else { return nil }
        return AgentRole.of(agentID: agentID, roleMap: roleMap)
    }

    /// Whether the envelope was written in the reference format (no `schema_version`).
    public var isReferenceFormat: Bool { self.schemaVersion == nil }
}

/// Roles of agents.
public enum AgentRole {
    /// The role of an agent id: the configured map's entry (looked up as given, then lower-cased),
    /// else the lower-cased prefix before the first `-`. `nil` for an empty id.
    public static func of(agentID: String, roleMap: [String: String] = [:]) -> String? {
        if let mapped = roleMap[agentID] ?? roleMap[agentID.lowercased()] { return mapped }
        let prefix = agentID.prefix(while: { $0 != "-" }).lowercased()
        return prefix.isEmpty ? nil : prefix
    }
}

extension WaveTimestamp {
    /// The current time.
    public static func now() -> WaveTimestamp {
        WaveTimestamp(microsecondsSinceEpoch: Int64((Date().timeIntervalSince1970 * 1_000_000).rounded()))
    }
}
