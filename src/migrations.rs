//! The two migration sets, central and clinic, embedded in the binary. Each is
//! versioned and checksummed (sqlx's `_sqlx_migrations` ledger, kept in each
//! database); a released file is never edited, only followed by a new one.

use std::future::Future;
use std::pin::Pin;

use sqlx::migrate::{MigrateError, Migration, Migrator};
use sqlx::PgConnection;

use crate::tenancy::ddl;
use crate::tenancy::naming::quote_literal;

pub static CENTRAL: Migrator = sqlx::migrate!("migrations/central");
pub static CLINIC: Migrator = sqlx::migrate!("migrations/clinic");

/// The migrations of `migrator` up to `version` (the schema a backup made
/// at that version fits).
pub fn up_to(migrator: &Migrator, version: i64) -> Migrator {
    Migrator {
        migrations: migrator
            .iter()
            .filter(|m| m.version <= version)
            .cloned()
            .collect(),
        ..Migrator::DEFAULT
    }
}

/// The clinic migrations up to `version` for the clinic schema `schema`
/// (shared tier): each text with its `public.` names rewritten
/// (`tenancy::ddl::in_schema`), its checksum the released file's, so that
/// the ledger reads the same on both tiers. sqlx's lock (one per database)
/// is off: a pod holds many schemas, each migrated under its own lock by
/// the caller.
pub fn in_schema(migrator: &Migrator, schema: &str) -> Migrator {
    Migrator {
        migrations: migrator
            .iter()
            .map(|m| Migration {
                sql: ddl::in_schema(&m.sql, schema).into(),
                ..m.clone()
            })
            .collect(),
        locking: false,
        ..Migrator::DEFAULT
    }
}

/// Every clinic migration for the new schema `schema`, then the ledger
/// sqlx would have written, as one script (the caller's search path leads
/// to the schema): a new shared clinic is laid out in one round trip.
pub fn clinic_script(schema: &str) -> String {
    let mut script = String::new();
    for migration in CLINIC.iter() {
        script.push_str(&ddl::in_schema(&migration.sql, schema));
        script.push_str(";\n");
    }
    script.push_str(
        "CREATE TABLE IF NOT EXISTS _sqlx_migrations (
    version BIGINT PRIMARY KEY,
    description TEXT NOT NULL,
    installed_on TIMESTAMPTZ NOT NULL DEFAULT now(),
    success BOOLEAN NOT NULL,
    checksum BYTEA NOT NULL,
    execution_time BIGINT NOT NULL
);\n",
    );
    for migration in CLINIC.iter() {
        script.push_str(&format!(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES ({}, {}, true, '\\x{}'::bytea, 0);\n",
            migration.version,
            quote_literal(&migration.description),
            crate::crypto::hex(&migration.checksum),
        ));
    }
    script
}

/// The newest version a migration set knows.
pub fn latest_version(migrator: &Migrator) -> i64 {
    migrator.iter().map(|m| m.version).max().unwrap_or(0)
}

/// The newest version successfully applied to the connected database (in
/// the clinic schema the search path leads to).
pub async fn applied_version(conn: &mut PgConnection) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT COALESCE(MAX(version), 0)::bigint FROM _sqlx_migrations WHERE success",
    )
    .fetch_one(conn)
    .await
}

/// Runs `migrator` on `conn`. Boxed, at one lifetime, so that callers'
/// futures stay `Send` (the migrator's generic future does not prove it for
/// every lifetime).
pub fn run_on<'c>(
    migrator: &'c Migrator,
    conn: &'c mut PgConnection,
) -> Pin<Box<dyn Future<Output = Result<(), MigrateError>> + Send + 'c>> {
    Box::pin(migrator.run_direct(conn))
}
