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

/// Live clinics (pending ones included) and spare schemas of each pod.
const OCCUPANCY: &str =
    "(SELECT COUNT(*) FROM companies c WHERE c.pod_id = p.id AND c.deleted_at IS NULL)
      + (SELECT COUNT(*) FROM pod_spares s WHERE s.pod_id = p.id)";

/// The fullest ready pod of `server` with a spare schema or room for one
/// more clinic (its clinics and spares fewer than its `max_clinics`): pods
/// fill one after the other. Run under the placement lock.
pub async fn with_room(conn: &mut PgConnection, server: Uuid) -> Result<Option<Pod>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT p.id, p.db_name, p.db_user, p.db_password_sealed
           FROM pods p
          WHERE p.db_server_id = $1 AND p.is_ready
            AND ({OCCUPANCY} < p.max_clinics
                 OR EXISTS (SELECT 1 FROM pod_spares s WHERE s.pod_id = p.id))
          ORDER BY {OCCUPANCY} DESC, p.created_at
          LIMIT 1"
    ))
    .bind(server)
    .fetch_optional(conn)
    .await
}

/// Takes one of the pod's spare schemas (the oldest): its id becomes the
/// new clinic's. Run in the claiming transaction.
pub async fn take_spare(conn: &mut PgConnection, pod: Uuid) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "DELETE FROM pod_spares WHERE id = (
             SELECT id FROM pod_spares WHERE pod_id = $1
              ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED)
         RETURNING id",
    )
    .bind(pod)
    .fetch_optional(conn)
    .await
}

/// Records a spare schema laid out in a pod.
pub async fn add_spare(central: &PgPool, id: Uuid, pod: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO pod_spares (id, pod_id) VALUES ($1, $2)")
        .bind(id)
        .bind(pod)
        .execute(central)
        .await?;
    Ok(())
}

/// A ready pod of an active server that has fewer than `wanted` spares and
/// room for one more, with where it is and how many spares to make (no
/// more than its room).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ShortOfSpares {
    #[sqlx(flatten)]
    pub pod: Pod,
    pub host: String,
    pub port: i32,
    pub missing: i64,
}

pub async fn short_of_spares(
    central: &PgPool,
    wanted: u32,
) -> Result<Vec<ShortOfSpares>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT p.id, p.db_name, p.db_user, p.db_password_sealed, v.host, v.port,
                LEAST($1 - (SELECT COUNT(*) FROM pod_spares s WHERE s.pod_id = p.id),
                      p.max_clinics - {OCCUPANCY}) AS missing
           FROM pods p JOIN db_servers v ON v.id = p.db_server_id
          WHERE p.is_ready AND v.is_active
            AND (SELECT COUNT(*) FROM pod_spares s WHERE s.pod_id = p.id) < $1
            AND {OCCUPANCY} < p.max_clinics
          ORDER BY p.created_at"
    ))
    .bind(i64::from(wanted))
    .fetch_all(central)
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
