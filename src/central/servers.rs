//! `db_servers`: the PostgreSQL servers that hold clinic databases.

use sqlx::postgres::PgConnectOptions;
use sqlx::{PgConnection, PgExecutor, PgPool};
use uuid::Uuid;

/// Advisory lock class held while a server is chosen for a new clinic and
/// the clinic's row recorded there.
const PLACEMENT_LOCK: i32 = 7330;

/// Where a new clinic database goes.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DbServer {
    pub id: Uuid,
    pub host: String,
    pub port: i32,
}

/// Records the admin connection's server as `primary` on first start.
pub async fn register_primary(
    central: &PgPool,
    admin: &PgConnectOptions,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO db_servers (name, host, port) VALUES ('primary', $1, $2)
         ON CONFLICT (name) DO NOTHING",
    )
    .bind(admin.get_host())
    .bind(i32::from(admin.get_port()))
    .execute(central)
    .await?;
    Ok(())
}

/// Serialises placements until the transaction on `tx` ends: between
/// [`pick_for_new_clinic`] and the commit of the clinic's row, no other
/// placement can count the same free place.
pub async fn lock_placements(tx: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock($1, 0)")
        .bind(PLACEMENT_LOCK)
        .execute(tx)
        .await?;
    Ok(())
}

/// The active server with the most room left (fewest live clinics, pending
/// ones included, for its `max_clinics`); `None` when every one is full.
pub async fn pick_for_new_clinic(
    central: impl PgExecutor<'_>,
) -> Result<Option<DbServer>, sqlx::Error> {
    sqlx::query_as(
        "SELECT s.id, s.host, s.port
           FROM db_servers s
           LEFT JOIN companies c ON c.db_server_id = s.id AND c.deleted_at IS NULL
          WHERE s.is_active
          GROUP BY s.id
         HAVING COUNT(c.id) < s.max_clinics
          ORDER BY s.max_clinics - COUNT(c.id) DESC, s.created_at
          LIMIT 1",
    )
    .fetch_optional(central)
    .await
}
