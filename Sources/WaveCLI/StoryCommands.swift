import ArgumentParser
import Foundation
import Logging
import WaveEngine
import WavePostgres
import WaveProtocol
import WaveStore

/// `wave story …`
struct StoryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "story",
        abstract: "Show, unblock and recover stories.",
        subcommands: [Show.self, Unblock.self, Recover.self]
    )

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a story and its checkpoints.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The story id (S-1).") var story: String
        @Option(help: "The session, when the story id is in several.") var session: String?

        func run() async throws {
            let store = try self.global.openStore()
            let record = try await storeCall { try await store.story(self.story, session: self.session) }
            if self.global.json {
                print(try JSONOutput.line(StoryJSON(record)))
                return
            }
            let state = record.state
            print("\(state.storyID) \(record.title)  session \(StoreIDs.display(state.sessionID))")
            print(
                "  \(state.status.rawValue) at \(state.currentGate); retries at this gate \(state.retryCount), in all \(state.totalRetries); AC \(state.acceptanceCriteriaPassed)/\(state.acceptanceCriteriaTotal)"
            )
            if let reason = state.blockedReason { print("  blocked: \(reason)") }
            if let next = state.nextAttemptAt { print("  next attempt not before \(next)") }
            if !state.dependencies.isEmpty { print("  depends on \(state.dependencies.joined(separator: ", "))") }
            for checkpoint in try await storeCall({ try await store.checkpoints(session: state.sessionID, story: state.storyID) }) {
                print("  #\(checkpoint.seq) \(checkpoint.type) \(checkpoint.name)\(checkpoint.superseded ? " (superseded)" : "")")
            }
        }
    }

    struct Unblock: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Unblock a story: it returns to the status its gate implies and gets work again.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The story id.") var story: String
        @Option(help: "The session, when the story id is in several.") var session: String?
        @Option(help: "Why.") var reason = "unblocked by an operator"
        @Option(help: "Who (default $USER@hostname).") var by: String?

        func run() async throws {
            let store = try self.global.openStore()
            let by = self.by ?? defaultOperator()
            let messageID = MessageID.makeTimeOrdered()
            let record = try await storeCall { try await store.story(self.story, session: self.session) }
            let result = try await storeCall {
                try await store.apply(
                    IncomingEvent(
                        messageID: messageID, eventType: EventType.storyUnblocked.rawValue, source: by, sessionID: record.state.sessionID,
                        storyID: self.story, event: .unblocked(reason: self.reason)))
            }
            guard case .applied(let after, _, _) = result else {
                throw CLIError.badInput("story \(self.story) is \(record.state.status.rawValue), not blocked")
            }
            let project = try await storeCall { try await store.session(id: after.state.sessionID).project }
            try await self.global.announce(
                Envelope(
                    eventType: .storyUnblocked, payload: ["by": .string(by), "reason": .string(self.reason)], source: "wave-cli",
                    project: project, messageID: messageID, sessionID: StoreIDs.display(after.state.sessionID), storyID: self.story), project: project)
            if self.global.json {
                print(try JSONOutput.line(StoryJSON(after)))
            } else {
                print("unblocked \(self.story): \(after.state.status.rawValue) at \(after.state.currentGate)")
            }
        }
    }

    struct Recover: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Recover a story: resume_from_last, resume_from_gate (--gate), restart or skip.",
            discussion: "Every recovery writes a manual checkpoint; a complete or cancelled story cannot be recovered."
        )
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The story id.") var story: String
        @Option(help: "The session, when the story id is in several.") var session: String?
        @Option(help: "resume_from_last, resume_from_gate, restart or skip.") var strategy: String
        @Option(help: "The gate for resume_from_gate (gate-N).") var gate: String?
        @Option(help: "Who (default $USER@hostname).") var by: String?

        func run() async throws {
            guard let strategy = RecoveryStrategy(rawValue: self.strategy) else {
                throw CLIError.badInput(
                    "--strategy must be one of \(RecoveryStrategy.allCases.map(\.rawValue).joined(separator: ", ")), not \"\(self.strategy)\"")
            }
            var target: GateID?
            if let gate = self.gate {
                do { target = try GateID(parsing: gate) } catch { throw CLIError.badInput(error.message) }
            }
            let store = try self.global.openStore()
            let by = self.by ?? defaultOperator()
            let messageID = MessageID.makeTimeOrdered()
            let outcome = try await storeCall {
                try await store.recover(story: self.story, session: self.session, strategy: strategy, gate: target, by: by, messageID: messageID)
            }
            let project = try await storeCall { try await store.session(id: outcome.story.state.sessionID).project }
            try await self.global.announce(
                Envelope(
                    eventType: .storyRecovered,
                    payload: ["strategy": .string(strategy.rawValue), "gate": .string(outcome.story.state.currentGate.description), "by": .string(by)],
                    source: "wave-cli", project: project, messageID: messageID, sessionID: StoreIDs.display(outcome.story.state.sessionID), storyID: self.story),
                project: project)
            if self.global.json {
                print(try JSONOutput.line(StoryJSON(outcome.story)))
            } else {
                print(
                    "recovered \(self.story) (\(strategy.rawValue)): \(outcome.story.state.status.rawValue) at \(outcome.story.state.currentGate)\(outcome.superseded > 0 ? ", \(outcome.superseded) checkpoints superseded" : "")"
                )
            }
        }
    }
}

/// `wave approve STORY --gate G`
struct ApproveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "approve",
        abstract: "Pass a story's current manual gate (0, 4–7) as an operator; the approver is recorded.",
        discussion: "Identity is the operator's claim (--by, default $USER@hostname), kept in the gate checkpoint."
    )
    @OptionGroup var global: GlobalOptions
    @Argument(help: "The story id.") var story: String
    @Option(help: "The gate to approve (gate-N); it must be the story's current gate.") var gate: String
    @Option(help: "The session, when the story id is in several.") var session: String?
    @Option(help: "Who (default $USER@hostname).") var by: String?

    func run() async throws {
        let gate: GateID
        do { gate = try GateID(parsing: self.gate) } catch { throw CLIError.badInput(error.message) }
        let store = try self.global.openStore()
        let by = self.by ?? defaultOperator()
        let messageID = MessageID.makeTimeOrdered()
        let result = try await storeCall { try await store.approve(story: self.story, session: self.session, gate: gate, by: by, messageID: messageID) }
        let record: StoryRecord
        switch result {
        case .applied(let after, _, _): record = after
        case .ignored(let reason, let after, _):
            throw CLIError.badInput("\(self.story) is \(after.state.status.rawValue); the approval had no effect (\(reason.rawValue))")
        case .duplicate, .staleSequence: throw CLIError(exitCode: 1, message: "the approval was not applied")
        }
        let project = try await storeCall { try await store.session(id: record.state.sessionID).project }
        try await self.global.announce(
            Envelope(
                eventType: .gateApproved, payload: ["gate_id": .string(gate.description), "by": .string(by)], source: "wave-cli",
                project: project, messageID: messageID, sessionID: StoreIDs.display(record.state.sessionID), storyID: self.story), project: project)
        if self.global.json {
            print(try JSONOutput.line(StoryJSON(record)))
        } else {
            print("approved \(gate) of \(self.story) as \(by): now \(record.state.status.rawValue) at \(record.state.currentGate)")
        }
    }
}

/// `wave approvals`
struct ApprovalsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "approvals", abstract: "Stories waiting at a manual gate.")
    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let store = try self.global.openStore()
        let waiting = try await storeCall { try await store.awaitingApproval() }
        if self.global.json {
            print(try JSONOutput.line(["approvals": waiting.map(StoryJSON.init)]))
            return
        }
        if waiting.isEmpty { print("no story is waiting at a manual gate") }
        for record in waiting {
            let owner = store.engine.configuration[record.state.currentGate].owner
            print("\(record.state.storyID)  \(record.state.currentGate) (owner \(owner))  session \(StoreIDs.display(record.state.sessionID))  \(record.title)")
        }
    }
}

/// `wave escalations list | ack ID`
struct EscalationsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "escalations", abstract: "Escalations raised for people.", subcommands: [List.self, Ack.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Open escalations, newest first (--all: acknowledged ones too).")
        @OptionGroup var global: GlobalOptions
        @Flag(help: "Include acknowledged escalations.") var all = false

        func run() async throws {
            let store = try self.global.openStore()
            let escalations = try await storeCall { try await store.escalations(all: self.all) }
            if self.global.json {
                struct Item: Encodable {
                    var id: String, kind: String, reason: String, story_id: String?, session_id: String?, created_at: String, acknowledged_by: String?
                }
                print(
                    try JSONOutput.line([
                        "escalations": escalations.map {
                            Item(
                                id: StoreIDs.display($0.id), kind: $0.kind, reason: $0.reason, story_id: $0.storyID,
                                session_id: $0.sessionID.map(StoreIDs.display),
                                created_at: $0.createdAt.description, acknowledged_by: $0.acknowledgedBy)
                        }
                    ]))
                return
            }
            if escalations.isEmpty { print("no open escalations") }
            for escalation in escalations {
                print(
                    "\(StoreIDs.display(escalation.id))  \(escalation.createdAt)  \(escalation.kind)  \(escalation.storyID ?? "-")  \(escalation.reason)\(escalation.acknowledgedBy.map { "  (acknowledged by \($0))" } ?? "")"
                )
            }
        }
    }

    struct Ack: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Acknowledge an escalation.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The escalation id.") var id: String
        @Option(help: "Who (default $USER@hostname).") var by: String?

        func run() async throws {
            let store = try self.global.openStore()
            try await storeCall { try await store.acknowledgeEscalation(self.id, by: self.by ?? defaultOperator()) }
            if self.global.json {
                print(try JSONOutput.line(["id": StoreIDs.display(self.id), "acknowledged": "true"]))
            } else {
                print("acknowledged \(StoreIDs.display(self.id))")
            }
        }
    }
}

/// `wave store migrate --json`: the migrations pending (`--dry-run`) or just applied, and how
/// many the store has.
struct MigrationsJSON: Encodable {
    var store: String
    var pending: [String]?
    var applied: [String]?
    var total: Int?
}

/// `wave store migrate [--dry-run]`
struct StoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "store", abstract: "The state store.", subcommands: [Migrate.self])

    struct Migrate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show and apply the store's migrations (they also run when any command opens the store).",
            discussion: "Migrations are additive: a database the Python reference created is upgraded in place without losing or changing a row."
        )
        @OptionGroup var global: GlobalOptions
        @Flag(help: "List the migrations that would apply, and change nothing.") var dryRun = false

        func run() async throws {
            let store = try self.global.storeURL()
            let (pending, applied, total): ([(id: String, summary: String)], [String], Int)
            switch store {
            case .sqlite(let location):
                pending = try storeCall { try self.global.pendingMigrations(at: location) }
                if self.dryRun {
                    (applied, total) = ([], 0)
                } else {
                    let opened = try self.global.openStore()
                    (applied, total) = (pending.map(\.id), try await storeCall { try await opened.appliedMigrations() }.count)
                }
            case .postgres(let url):
                // Under the migrations' advisory lock, in one transaction.
                let connector = PostgresConnector(url: url, logger: Logger(label: "wave.store"))
                (pending, applied, total) = try await storeCall {
                    try await connector.withClient { client in
                        let migrator = PostgresMigrator(client: client, logger: Logger(label: "wave.store"))
                        let pending = try await migrator.pending()
                        guard !self.dryRun else { return (pending, [String](), 0) }
                        let applied = try await migrator.migrate()
                        return (pending, applied, try await migrator.applied().count)
                    }
                }
            }
            if self.dryRun {
                if self.global.json {
                    print(try JSONOutput.line(MigrationsJSON(store: store.description, pending: pending.map(\.id))))
                } else {
                    print(pending.isEmpty ? "\(store) is up to date" : "\(pending.count) migrations would apply to \(store):")
                    for migration in pending { print("  \(migration.id): \(migration.summary)") }
                }
            } else if self.global.json {
                print(try JSONOutput.line(MigrationsJSON(store: store.description, applied: applied, total: total)))
            } else {
                print(applied.isEmpty ? "\(store) was already up to date (\(total) migrations)" : "applied \(applied.count) migrations to \(store)")
            }
        }
    }
}
