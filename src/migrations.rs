//! The two migration sets, central and clinic, embedded in the binary. Each is
//! versioned and checksummed (sqlx's `_sqlx_migrations` ledger, kept in each
//! database); a released file is never edited, only followed by a new one.

use std::future::Future;
use std::pin::Pin;

use sqlx::migrate::{MigrateError, Migrator};
use sqlx::PgConnection;

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

/// The newest version a migration set knows.
pub fn latest_version(migrator: &Migrator) -> i64 {
    migrator.iter().map(|m| m.version).max().unwrap_or(0)
}

/// The newest version successfully applied to the connected database.
pub async fn applied_version(conn: &mut PgConnection) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT COALESCE(MAX(version), 0)::bigint FROM public._sqlx_migrations WHERE success",
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
