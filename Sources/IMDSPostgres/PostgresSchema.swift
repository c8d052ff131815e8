import Foundation
import IMDSCore
import Logging
import PostgresNIO

/// The store's tables and their migrations (described in docs/postgres.md). Run at every start
/// under a transaction-scoped advisory lock, so that two servers starting at once migrate once.
enum PostgresSchema {
    /// The `pg_advisory_xact_lock` key that serializes migrations and first-start initialisation.
    static let migrationLock: Int64 = 0x696D_6473_0000_0001
    /// The channel every commit notifies, with the revision as the payload.
    static let channel = "imds_changes"
    /// Every how many revisions the compacted snapshot row is rewritten.
    static let snapshotEvery: StoreRevision = 1000

    /// Migration n (1-based) is `migrations[n - 1]`; each is a list of statements run in one transaction.
    static let migrations: [[String]] = [
        [
            """
            CREATE TABLE imds_changes (
                revision bigint PRIMARY KEY CHECK (revision > 0),
                changes jsonb NOT NULL,
                committed_at timestamptz NOT NULL DEFAULT now(),
                committed_by text NOT NULL)
            """,
            "CREATE TABLE imds_head (id integer PRIMARY KEY CHECK (id = 1), revision bigint NOT NULL)",
            "INSERT INTO imds_head (id, revision) VALUES (1, 0)",
            "CREATE TABLE imds_snapshot (id integer PRIMARY KEY CHECK (id = 1), revision bigint NOT NULL, state jsonb NOT NULL)",
            """
            CREATE TABLE imds_identity (
                id integer PRIMARY KEY CHECK (id = 1),
                private_key_pem text NOT NULL,
                certificate_pem text NOT NULL,
                created_at timestamptz NOT NULL DEFAULT now())
            """,
        ]
    ]

    /// Brings the schema to the latest version and creates the shared token secret (revision 1)
    /// when the log is empty, in one transaction under the migration lock.
    static func migrate(_ conn: PostgresConnection, host: String, logger: Logger) async throws {
        try await conn.query("BEGIN", logger: logger)
        do {
            try await conn.query("SELECT pg_advisory_xact_lock(\(migrationLock))", logger: logger)
            try await conn.query(
                "CREATE TABLE IF NOT EXISTS imds_schema_version (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
                logger: logger)
            var version = 0
            for try await v in try await conn.query("SELECT coalesce(max(version), 0)::integer FROM imds_schema_version", logger: logger)
                .decode(Int32.self)
            { version = Int(v) }
            guard version <= migrations.count else {
                throw PostgresStoreError.incompatible(
                    "the database's schema is version \(version), newer than this imds knows (\(migrations.count)); upgrade imds")
            }
            for n in stride(from: version + 1, through: migrations.count, by: 1) {
                for statement in migrations[n - 1] { try await conn.query(PostgresQuery(unsafeSQL: statement), logger: logger) }
                try await conn.query("INSERT INTO imds_schema_version (version) VALUES (\(Int32(n)))", logger: logger)
                logger.notice("store: migrated the PostgreSQL schema to version \(n)")
            }
            // The first host creates the secret that keys tokens and credentials: revision 1.
            var head: Int64 = 0
            for try await r in try await conn.query("SELECT revision FROM imds_head WHERE id = 1", logger: logger).decode(Int64.self) { head = r }
            if head == 0 {
                let secret = (0..<32).map { _ in UInt8.random(in: 0...255) }
                let changes = String(decoding: try JSONEncoder().encode([StoreChange.setSecret(secret)]), as: UTF8.self)
                try await conn.query(
                    "INSERT INTO imds_changes (revision, changes, committed_by) VALUES (1, \(changes)::jsonb, \(host))", logger: logger)
                try await conn.query("UPDATE imds_head SET revision = 1 WHERE id = 1", logger: logger)
            }
            try await conn.query("COMMIT", logger: logger)
        } catch {
            _ = try? await conn.query("ROLLBACK", logger: logger)
            throw error
        }
    }

    /// The shared identity pair: the one stored, else `create()`'s, stored if no other host's won.
    static func identity(_ conn: PostgresConnection, create: () throws -> SharedIdentity, logger: Logger) async throws -> SharedIdentity {
        if let found = try await readIdentity(conn, logger: logger) { return found }
        let made = try create()
        try await conn.query(
            """
            INSERT INTO imds_identity (id, private_key_pem, certificate_pem) VALUES (1, \(made.privateKeyPEM), \(made.certificatePEM))
            ON CONFLICT (id) DO NOTHING
            """, logger: logger)
        guard let stored = try await readIdentity(conn, logger: logger) else {
            throw PostgresStoreError.incompatible("imds_identity stays empty after an insert")
        }
        return stored
    }

    static func readIdentity(_ conn: PostgresConnection, logger: Logger) async throws -> SharedIdentity? {
        for try await (key, cert) in try await conn.query("SELECT private_key_pem, certificate_pem FROM imds_identity WHERE id = 1", logger: logger)
            .decode((String, String).self)
        {
            return SharedIdentity(privateKeyPEM: key, certificatePEM: cert)
        }
        return nil
    }

    /// The durable state at the head: the compacted snapshot and every later change.
    static func load(_ conn: PostgresConnection, logger: Logger) async throws -> (state: DurableState, revision: StoreRevision) {
        var state = DurableState()
        var revision: StoreRevision = 0
        for try await (r, json) in try await conn.query("SELECT revision, state::text FROM imds_snapshot WHERE id = 1", logger: logger)
            .decode((Int64, String).self)
        {
            state = try JSONDecoder().decode(DurableState.self, from: Data(json.utf8))
            revision = StoreRevision(r)
        }
        while true {
            let records = try await changes(after: revision, conn, logger: logger)
            for record in records {
                guard record.revision == revision + 1 else {
                    throw PostgresStoreError.incompatible("imds_changes skips from revision \(revision) to \(record.revision)")
                }
                for c in record.changes {
                    do { try state.apply(c) } catch {
                        throw PostgresStoreError.incompatible("imds_changes revision \(record.revision) cannot be replayed (\(error))")
                    }
                }
                revision = record.revision
            }
            if records.count < pageSize { return (state, revision) }
        }
    }

    static let pageSize = 500

    /// Up to ``pageSize`` committed batches after `revision`, in order.
    static func changes(after revision: StoreRevision, _ conn: PostgresConnection, logger: Logger) async throws -> [JournalRecord] {
        var out: [JournalRecord] = []
        let rows = try await conn.query(
            "SELECT revision, changes::text FROM imds_changes WHERE revision > \(Int64(revision)) ORDER BY revision LIMIT \(Int64(pageSize))",
            logger: logger)
        for try await (r, json) in rows.decode((Int64, String).self) {
            out.append(JournalRecord(revision: StoreRevision(r), changes: try JSONDecoder().decode([StoreChange].self, from: Data(json.utf8))))
        }
        return out
    }
}

/// The identity signing pair every host shares (PEM), kept in `imds_identity`.
public struct SharedIdentity: Sendable, Equatable, Codable {
    public var privateKeyPEM: String
    public var certificatePEM: String
    public init(privateKeyPEM: String, certificatePEM: String) {
        self.privateKeyPEM = privateKeyPEM
        self.certificatePEM = certificatePEM
    }
}
