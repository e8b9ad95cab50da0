/// A store operation that could not be done, with a message for people.
public struct StoreError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What kind of failure.
    public enum Code: String, Sendable, Hashable {
        /// The store URL is neither `sqlite:PATH` nor a valid `postgres://…` URL.
        case invalidURL = "invalid_url"
        /// A migration cannot apply to the rows that exist; it changed nothing.
        case migrationBlocked = "migration_blocked"
        /// No such session or story.
        case notFound = "not_found"
        /// A story id names stories in several sessions; give the session.
        case ambiguous
        /// The input is invalid (unknown dependency, cycle, duplicate story, bad value).
        case invalidInput = "invalid_input"
        /// Another writer changed the row first (optimistic concurrency); retry.
        case conflict
        /// The change is not allowed in the current state.
        case notAllowed = "not_allowed"
        /// The store's server cannot be reached (or the database does not exist there).
        case unreachable
        /// The store's server refused the credentials.
        case authenticationFailed = "authentication_failed"
        /// The instance no longer holds the lease of a project it wrote for (another instance
        /// took it over): nothing of the transaction was written.
        case leaseLost = "lease_lost"
        /// A result for a task that was taken back (timed out, withdrawn by a stop) while the
        /// result waited to be applied: nothing was applied or recorded.
        case withdrawn
    }

    /// What kind of failure.
    public var code: Code
    /// For people.
    public var message: String

    /// Creates an error.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { self.message }
}
