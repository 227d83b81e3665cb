//! Registration rate limits, in the central database so every server
//! instance sees the same counts. Each registration is counted *before* its
//! clinic is provisioned, under one advisory lock: however many arrive at
//! once, on however many instances, at most `per_address` from one client
//! address and `total` from all addresses together are admitted in any
//! [`WINDOW_MINUTES`]. Refused attempts are not counted; each counted one
//! frees its place when it leaves the window, and a refusal says how long
//! until the next place frees.

use sqlx::PgPool;

use super::login_failures::Admission;
use crate::config::RegistrationSettings;

pub const WINDOW_MINUTES: i32 = 60;

/// Advisory lock class (first key of `pg_advisory_xact_lock(int, int)`):
/// one lock for every registration, as the global limit spans addresses.
const LOCK: i32 = 7331;

/// Counts a registration from `client_addr`, unless that address or all
/// addresses together have used up the window's registrations.
pub async fn admit(
    central: &PgPool,
    client_addr: &str,
    limits: &RegistrationSettings,
) -> Result<Admission, sqlx::Error> {
    let mut tx = central.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1, 0)")
        .bind(LOCK)
        .execute(&mut *tx)
        .await?;
    // For each limit reached, the time until the attempt that reached it
    // (the newest `max`-th) leaves the window; the later of the two.
    let (id, wait_ms): (Option<i64>, Option<f64>) = sqlx::query_as(
        "WITH window_start AS (SELECT clock_timestamp() - make_interval(mins => $2) AS at),
              wait AS (
                SELECT GREATEST(
                  (SELECT attempted_at FROM registration_attempts, window_start
                    WHERE client_addr = $1 AND attempted_at > window_start.at
                    ORDER BY attempted_at DESC OFFSET $3 - 1 LIMIT 1),
                  (SELECT attempted_at FROM registration_attempts, window_start
                    WHERE attempted_at > window_start.at
                    ORDER BY attempted_at DESC OFFSET $4 - 1 LIMIT 1)
                ) + make_interval(mins => $2) - clock_timestamp() AS remaining),
              counted AS (
                INSERT INTO registration_attempts (client_addr)
                SELECT $1 FROM wait WHERE wait.remaining IS NULL
                RETURNING id)
         SELECT (SELECT id FROM counted),
                EXTRACT(EPOCH FROM (SELECT remaining FROM wait))::float8 * 1000",
    )
    .bind(client_addr)
    .bind(WINDOW_MINUTES)
    .bind(i64::from(limits.per_address_per_hour))
    .bind(i64::from(limits.per_hour))
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Admission::from_query(id, wait_ms))
}

/// Takes back a registration the server failed (a 5xx): it made nothing.
pub async fn withdraw(central: &PgPool, id: i64) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM registration_attempts WHERE id = $1")
        .bind(id)
        .execute(central)
        .await?;
    Ok(())
}

/// Deletes the attempts older than the window: they no longer count.
/// Returns the number deleted.
pub async fn purge_expired(central: &PgPool) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "DELETE FROM registration_attempts WHERE attempted_at <= now() - make_interval(mins => $1)",
    )
    .bind(WINDOW_MINUTES)
    .execute(central)
    .await?;
    Ok(done.rows_affected())
}
