public import Foundation
import Synchronization

/// Per-unit counters: messages signed, skipped and why, verified by result, failed and why.
/// A unit is a name from the `Units` table, else a mail domain: the From address's for outgoing mail, each recipient's for incoming
/// mail. The daemon writes them as JSON to `StateDirectory/statistics.json` every minute and at
/// exit; `smime-milter stats` prints them.
public final class Statistics: Sendable {
    /// unit -> counter -> count; counters are `signed`, `skipped.<why>`, `verified.<result>`,
    /// `failed.<why>`.
    public struct Snapshot: Sendable, Codable, Equatable {
        public var since: Date
        public var written: Date?
        public var units: [String: [String: Int]]

        public init(since: Date = Date(), units: [String: [String: Int]] = [:]) {
            self.since = since
            self.units = units
        }
    }

    private let state: Mutex<Snapshot>

    public init(starting snapshot: Snapshot = Snapshot()) {
        state = Mutex(snapshot)
    }

    /// Counts one message for each unit.
    public func count(_ counter: String, units: [String]) {
        state.withLock { snapshot in
            for unit in Set(units) {
                snapshot.units[unit, default: [:]][counter, default: 0] += 1
            }
        }
    }

    public var snapshot: Snapshot { state.withLock { $0 } }

    /// Writes the counters to `path` (a temporary file renamed over it, so a reader never sees
    /// half a file).
    public func write(to path: String) throws {
        var snapshot = self.snapshot
        snapshot.written = Date()
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.dateEncodingStrategy = .iso8601
        try encoder.encode(snapshot).write(to: URL(fileURLWithPath: path), options: .atomic)
    }

    public static func read(from path: String) throws -> Snapshot {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return try decoder.decode(Snapshot.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
    }

    /// The counters as a table: one row per unit, one column per counter that occurs.
    public static func table(_ snapshot: Snapshot) -> String {
        let counters = Array(Set(snapshot.units.values.flatMap(\.keys))).sorted { a, b in
            let order = ["signed", "verified", "skipped", "failed"]
            let rank = { (name: String) in order.firstIndex(where: { name.hasPrefix($0) }) ?? order.count }
            return (rank(a), a) < (rank(b), b)
        }
        var rows = [["unit"] + counters]
        for unit in snapshot.units.keys.sorted() {
            rows.append([unit] + counters.map { String(snapshot.units[unit]?[$0] ?? 0) })
        }
        if snapshot.units.count > 1 {
            rows.append(["total"] + counters.map { counter in String(snapshot.units.values.reduce(0) { $0 + ($1[counter] ?? 0) }) })
        }
        let widths = (0..<rows[0].count).map { column in rows.map { $0[column].count }.max() ?? 0 }
        return rows.map { row in
            row.enumerated().map { column, cell in
                column == 0
                    ? cell.padding(toLength: widths[column], withPad: " ", startingAt: 0)
                    : String(repeating: " ", count: widths[column] - cell.count) + cell
            }.joined(separator: "  ")
        }.joined(separator: "\n")
    }
}
