/// The records' tables, in numbered versions. Each version is one migration, written for SQLite
/// (the local `events.sqlite`) and for PostgreSQL (the database several servers share); a
/// database is brought up to `version` by the migrations after the one it has, in one
/// transaction, and a database with a higher version than `version` is refused: it was written
/// by a newer smime-milter, whose records this one could misread.
///
/// SQLite keeps its version in `PRAGMA user_version`; PostgreSQL in the one-row table
/// `smime_milter_schema`.
enum RecordsSchema {
    struct Migration {
        let version: Int
        let sqlite: String
        let postgres: String
    }

    static var version: Int { migrations.last!.version }

    /// `pg_advisory_xact_lock`'s key while migrating: two daemons starting at once migrate one
    /// after the other ("SMMR", as SQLite's application id).
    static let lockKey = 0x534D_4D52

    static let migrations: [Migration] = [
        // 1: one row per message, and the messages counted by day in the same transaction (the
        // report reads the counts, not every record).
        Migration(
            version: 1,
            sqlite: """
                CREATE TABLE events (
                    id INTEGER PRIMARY KEY,
                    time INTEGER NOT NULL,           -- Unix seconds
                    day TEXT NOT NULL,               -- YYYY-MM-DD, the server's local time
                    queue_id TEXT,
                    direction TEXT NOT NULL,         -- outgoing, incoming, internal
                    unit TEXT,                       -- the sender's unit (outgoing, internal)
                    recipient_units TEXT NOT NULL,   -- JSON array of the local recipients' units
                    outcome TEXT NOT NULL,           -- signed, sender-signed, unsigned, verified, deferred, rejected
                    result TEXT,                     -- the verdict (verified, sender-signed; internal signed)
                    reason TEXT,
                    signer_subject TEXT,
                    signer_serial TEXT
                );
                CREATE INDEX events_day ON events (day);
                CREATE TABLE daily (
                    day TEXT NOT NULL,
                    direction TEXT NOT NULL,
                    unit TEXT NOT NULL,              -- '' for incoming mail
                    recipient_units TEXT NOT NULL,   -- '[]' for sent mail
                    outcome TEXT NOT NULL,
                    detail TEXT NOT NULL,            -- the reason of unsigned mail, the result of incoming, else ''
                    count INTEGER NOT NULL,
                    PRIMARY KEY (day, direction, unit, recipient_units, outcome, detail)
                ) WITHOUT ROWID;
                """,
            postgres: """
                CREATE TABLE events (
                    id bigserial PRIMARY KEY,
                    time bigint NOT NULL,
                    day text NOT NULL,
                    queue_id text,
                    direction text NOT NULL,
                    unit text,
                    recipient_units text NOT NULL,
                    outcome text NOT NULL,
                    result text,
                    reason text,
                    signer_subject text,
                    signer_serial text
                );
                CREATE INDEX events_day ON events (day);
                CREATE TABLE daily (
                    day text NOT NULL,
                    direction text NOT NULL,
                    unit text NOT NULL,
                    recipient_units text NOT NULL,
                    outcome text NOT NULL,
                    detail text NOT NULL,
                    count bigint NOT NULL,
                    PRIMARY KEY (day, direction, unit, recipient_units, outcome, detail)
                );
                """),
        // 2: several servers. Every record names its server (`ServerName`) and its attempt, the
        // how-many-th record of its queue ID on that server: with its time, the key that makes
        // forwarding a record twice a no-op. SQLite marks what it has forwarded; PostgreSQL
        // counts by server too, for `report --server`.
        Migration(
            version: 2,
            sqlite: """
                ALTER TABLE events ADD COLUMN server TEXT;
                ALTER TABLE events ADD COLUMN attempt INTEGER NOT NULL DEFAULT 1;
                ALTER TABLE events ADD COLUMN forwarded INTEGER NOT NULL DEFAULT 0;
                UPDATE events SET attempt = numbered.n
                  FROM (SELECT id, row_number() OVER (PARTITION BY queue_id ORDER BY id) AS n FROM events) AS numbered
                 WHERE events.id = numbered.id AND numbered.n > 1;
                CREATE INDEX events_queue ON events (queue_id, attempt);
                CREATE INDEX events_waiting ON events (id) WHERE forwarded = 0;
                """,
            postgres: """
                ALTER TABLE events ADD COLUMN server text NOT NULL DEFAULT '', ADD COLUMN attempt integer NOT NULL DEFAULT 1;
                CREATE UNIQUE INDEX events_key ON events (server, (coalesce(queue_id, '')), attempt, time);
                ALTER TABLE daily ADD COLUMN server text NOT NULL DEFAULT '';
                ALTER TABLE daily DROP CONSTRAINT daily_pkey;
                ALTER TABLE daily ADD PRIMARY KEY (server, day, direction, unit, recipient_units, outcome, detail);
                CREATE INDEX daily_day ON daily (day);
                """),
    ]
}
