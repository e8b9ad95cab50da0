/// Counts the entries that vanished with Redis, from the gaps in their senders' numbering.
///
/// Redis restarted without persistence loses every entry it held; the consumer group is created
/// again and reading goes on, but what was lost is not anywhere to be read. How much was lost can
/// still be known for a sender that numbers its messages on a stream one by one (`seq` one more
/// each time, as Wave's agents do): the numbers between the newest read before the loss and the
/// first read after it never arrived. A sender is counted only if its last step before the loss
/// was exactly one, so senders without `seq` (the reference's agents), senders numbering per story,
/// and senders whose messages are shared among several readers are left out rather than
/// miscounted. A jump of ``restartJump`` or more is the sender's own restart (Wave's agents start
/// numbering from the clock in microseconds), not a loss.
struct SenderSequences: Sendable {
    /// A run of numbers that never arrived from one sender.
    struct Gap: Sendable, Hashable {
        var source: String
        var first: UInt64
        var last: UInt64
        var count: Int { Int(self.last - self.first + 1) }
    }

    /// A gap at least this large is a sender that restarted, not lost entries.
    static let restartJump: UInt64 = 1_000_000
    /// Senders remembered per stream (a bound on memory; the oldest knowledge is dropped).
    static let limit = 10_000

    struct Sender: Sendable {
        var newest: UInt64
        /// Whether the step to `newest` was exactly one.
        var stepping: Bool
    }

    private(set) var senders: [String: Sender] = [:]
    /// After a loss: where each stepping sender stood, until it is read again.
    private(set) var beforeLoss: [String: UInt64] = [:]

    /// Notes a message read for the first time; returns the gap it closes, if it is the first
    /// from its sender after a loss and numbers went missing.
    mutating func note(source: String, seq: UInt64) -> Gap? {
        var gap: Gap?
        if let newest = self.beforeLoss.removeValue(forKey: source), seq > newest + 1, seq - newest - 1 < Self.restartJump {
            gap = Gap(source: source, first: newest + 1, last: seq - 1)
        }
        if let sender = self.senders[source] {
            if seq > sender.newest {
                self.senders[source] = Sender(newest: seq, stepping: seq == sender.newest + 1)
            } else {
                self.senders[source]?.stepping = false
            }
        } else {
            if self.senders.count >= Self.limit { self.senders.removeAll(keepingCapacity: true) }
            self.senders[source] = Sender(newest: seq, stepping: false)
        }
        return gap
    }

    /// The stream was lost with Redis: remember where each stepping sender stood.
    mutating func lost() {
        for (source, sender) in self.senders where sender.stepping { self.beforeLoss[source] = sender.newest }
    }
}
