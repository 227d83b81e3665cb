//! `pods`: the shared tier's databases, each holding the schemas of up to
//! `max_clinics` clinics (see `tenancy::pods`).

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// A pod, as provisioning needs it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Pod {
    pub id: Uuid,
    pub db_name: String,
    pub db_user: String,
    pub db_password_sealed: Vec<u8>,
}

/// The fullest ready pod of `server` with room for one more clinic (its
/// live clinics, pending ones included, fewer than its `max_clinics`):
/// pods fill one after the other. Run under the placement lock.
pub async fn with_room(conn: &mut PgConnection, server: Uuid) -> Result<Option<Pod>, sqlx::Error> {
    sqlx::query_as(
        "SELECT p.id, p.db_name, p.db_user, p.db_password_sealed
           FROM pods p
           LEFT JOIN companies c ON c.pod_id = p.id AND c.deleted_at IS NULL
          WHERE p.db_server_id = $1 AND p.is_ready
          GROUP BY p.id
         HAVING COUNT(c.id) < p.max_clinics
          ORDER BY COUNT(c.id) DESC, p.created_at
          LIMIT 1",
    )
    .bind(server)
    .fetch_optional(conn)
    .await
}

/// Records a pod being built (not given clinics until [`mark_ready`]).
pub async fn insert(
    central: &PgPool,
    pod: &Pod,
    server: Uuid,
    max_clinics: u32,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO pods (id, db_server_id, db_name, db_user, db_password_sealed, max_clinics)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(pod.id)
    .bind(server)
    .bind(&pod.db_name)
    .bind(&pod.db_user)
    .bind(&pod.db_password_sealed)
    .bind(i32::try_from(max_clinics).unwrap_or(i32::MAX))
    .execute(central)
    .await?;
    Ok(())
}

pub async fn mark_ready(central: &PgPool, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE pods SET is_ready = true WHERE id = $1")
        .bind(id)
        .execute(central)
        .await?;
    Ok(())
}

/// Forgets a pod whose building failed.
pub async fn delete(central: &PgPool, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM pods WHERE id = $1")
        .bind(id)
        .execute(central)
        .await?;
    Ok(())
}

/// One pod by id.
pub async fn find(central: &PgPool, id: Uuid) -> Result<Option<Pod>, sqlx::Error> {
    sqlx::query_as("SELECT id, db_name, db_user, db_password_sealed FROM pods WHERE id = $1")
        .bind(id)
        .fetch_optional(central)
        .await
}
