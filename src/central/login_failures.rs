//! Failed-login tracking, in the central database so every server instance
//! sees the same counts. Throttling applies per account email and per
//! client address over a sliding window.

use sqlx::PgPool;

/// Failures within the window after which further attempts are refused.
pub const MAX_PER_EMAIL: i64 = 5;
pub const MAX_PER_ADDRESS: i64 = 20;
pub const WINDOW_MINUTES: i32 = 15;

/// Whether this email or address has failed too often lately.
pub async fn is_throttled(
    central: &PgPool,
    email: &str,
    client_addr: &str,
) -> Result<bool, sqlx::Error> {
    let (by_email, by_addr): (i64, i64) = sqlx::query_as(
        "SELECT COUNT(*) FILTER (WHERE email = lower($1)),
                COUNT(*) FILTER (WHERE client_addr = $2)
           FROM login_failures
          WHERE failed_at > now() - make_interval(mins => $3)
            AND (email = lower($1) OR client_addr = $2)",
    )
    .bind(email)
    .bind(client_addr)
    .bind(WINDOW_MINUTES)
    .fetch_one(central)
    .await?;
    Ok(by_email >= MAX_PER_EMAIL || by_addr >= MAX_PER_ADDRESS)
}

pub async fn record(central: &PgPool, email: &str, client_addr: &str) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO login_failures (email, client_addr) VALUES (lower($1), $2)")
        .bind(email)
        .bind(client_addr)
        .execute(central)
        .await?;
    Ok(())
}

/// A successful login forgives the account's earlier failures.
pub async fn clear(central: &PgPool, email: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM login_failures WHERE email = lower($1)")
        .bind(email)
        .execute(central)
        .await?;
    Ok(())
}

/// Deletes the failures older than the window: they no longer count.
/// Returns the number deleted.
pub async fn purge_expired(central: &PgPool) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "DELETE FROM login_failures WHERE failed_at <= now() - make_interval(mins => $1)",
    )
    .bind(WINDOW_MINUTES)
    .execute(central)
    .await?;
    Ok(done.rows_affected())
}
