import Foundation

/// Moves the records of a file not yet in PostgreSQL there, oldest first, in batches: what
/// `records migrate` does, and what the daemon's forwarder does continuously.
public enum RecordsMigration {
    public struct Progress: Sendable, Equatable {
        /// Records sent.
        public var sent = 0
        /// Of them, those PostgreSQL did not have yet.
        public var new = 0

        public init(sent: Int = 0, new: Int = 0) {
            self.sent = sent
            self.new = new
        }
    }

    /// Forwards every waiting record of `path`; `report` is told after each batch. A record is
    /// marked in the file only after PostgreSQL committed it, so a run stopped half-way goes on
    /// where it stopped, and one repeated adds nothing. Records keep the server they were
    /// written by, unless `renamed`; those written before servers were named get `server`.
    public static func run(
        from path: String, to target: PostgresStore.Target, server: String, renamed: Bool, report: (Int, Int) -> Void
    ) throws -> Progress {
        guard FileManager.default.fileExists(atPath: path) else {
            throw RecordsError(.unreadable, "\(path): no such records database; name the server's events.sqlite")
        }
        let store = try EventStore(path: path)
        let database = try PostgresStore(target, migrate: true)
        var progress = Progress()
        while true {
            let rows = try store.waiting(limit: EventForwarder.batchSize * 4, server: server, renamed: renamed)
            guard let last = rows.last else { break }
            progress.new += try database.forward(rows)
            try store.markForwarded(through: last.id)
            progress.sent += rows.count
            report(progress.sent, progress.new)
        }
        return progress
    }
}
