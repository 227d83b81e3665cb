//! `db_servers`: the PostgreSQL servers that hold clinic databases.

use sqlx::postgres::PgConnectOptions;
use sqlx::PgPool;
use uuid::Uuid;

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

/// The active server with the most room left (fewest clinics for its size).
pub async fn pick_for_new_clinic(central: &PgPool) -> Result<DbServer, sqlx::Error> {
    sqlx::query_as(
        "SELECT s.id, s.host, s.port
           FROM db_servers s
           LEFT JOIN companies c ON c.db_server_id = s.id AND c.deleted_at IS NULL
          WHERE s.is_active
          GROUP BY s.id
          ORDER BY s.max_clinics - COUNT(c.id) DESC, s.created_at
          LIMIT 1",
    )
    .fetch_one(central)
    .await
}
