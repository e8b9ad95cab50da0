import Testing

@testable import WaveBus

@Suite("Counting what vanished with Redis from senders' seq gaps")
struct SenderSequencesTests {
    /// Notes `numbers` from `source`, returning the gaps found.
    static func note(_ sequences: inout SenderSequences, _ source: String, _ numbers: [UInt64]) -> [SenderSequences.Gap] {
        numbers.compactMap { sequences.note(source: source, seq: $0) }
    }

    @Test("a sender numbering one by one: the numbers between the newest before the loss and the first after are counted once")
    func steppingSender() {
        var sequences = SenderSequences()
        #expect(Self.note(&sequences, "BE-1", [100, 101, 102]).isEmpty)
        sequences.lost()
        let gaps = Self.note(&sequences, "BE-1", [107, 108])
        #expect(gaps == [SenderSequences.Gap(source: "BE-1", first: 103, last: 106)])
        #expect(gaps.first?.count == 4)
        // The loss is counted once: a later jump without a loss is not a loss.
        #expect(Self.note(&sequences, "BE-1", [120]).isEmpty)
    }

    @Test("nothing missing after the loss (the next number follows on), or no loss at all: nothing counted")
    func nothingMissing() {
        var sequences = SenderSequences()
        _ = Self.note(&sequences, "QA-1", [1, 2, 3])
        sequences.lost()
        #expect(Self.note(&sequences, "QA-1", [4]).isEmpty)
        var unlost = SenderSequences()
        #expect(Self.note(&unlost, "QA-1", [1, 2, 9, 10]).isEmpty, "a gap without a loss of Redis is not counted here")
    }

    @Test("senders that do not number one by one, seen once, or restarted are left out rather than miscounted")
    func leftOut() {
        var sequences = SenderSequences()
        _ = Self.note(&sequences, "per-story", [5, 3, 9])  // numbering per story: the last step was not one
        _ = Self.note(&sequences, "once", [42])  // a single message shows no step
        _ = Self.note(&sequences, "restarted", [10, 11])
        sequences.lost()
        #expect(Self.note(&sequences, "per-story", [15]).isEmpty)
        #expect(Self.note(&sequences, "once", [50]).isEmpty)
        #expect(Self.note(&sequences, "restarted", [11 + SenderSequences.restartJump + 5]).isEmpty, "a jump of a million or more is a restart")
        #expect(Self.note(&sequences, "new-after-loss", [1, 2]).isEmpty)
    }

    @Test("each sender is counted on its own")
    func perSender() {
        var sequences = SenderSequences()
        _ = Self.note(&sequences, "A", [1, 2])
        _ = Self.note(&sequences, "B", [10, 11])
        sequences.lost()
        let gaps = Self.note(&sequences, "B", [15]) + Self.note(&sequences, "A", [3])
        #expect(gaps.map(\.count) == [3])
        #expect(gaps.first?.source == "B")
    }
}
