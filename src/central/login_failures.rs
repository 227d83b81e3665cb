//! Login throttling, in the central database so every server instance sees
//! the same counts. Each login attempt is counted *before* its password is
//! checked, and the count and the decision are made under advisory locks on
//! the normalised email and on the client address: however many attempts
//! arrive at once, on however many instances, at most
//! [`LoginLimits::per_account`] per account and
//! [`LoginLimits::per_address`] per address get their password checked in
//! any [`LoginLimits::window`]. A success forgives the account's attempts.
//!
//! The limit slows guessing down rather than locking the account: refused
//! attempts are not counted, and each counted attempt frees its place when it
//! leaves the window; the refusal says how long until the next place frees:
//! the real time, from the timestamps in central, not a fixed delay.

use std::time::Duration;

use sqlx::PgPool;

/// The default limits: attempts of one account (`LOGIN_ATTEMPTS_PER_ACCOUNT`)
/// and of one client address (`LOGIN_ATTEMPTS_PER_ADDRESS`) checked in any
/// window of `WINDOW_MINUTES` (`LOGIN_WINDOW_SECS`, 900).
pub const MAX_PER_EMAIL: i64 = 5;
pub const MAX_PER_ADDRESS: i64 = 20;
pub const WINDOW_MINUTES: i32 = 15;

/// How many login attempts are checked, and in what window. Every instance
/// on one central database should use the same limits: each purges, by its
/// own window, the failures it thinks are past.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginLimits {
    /// Attempts of one (lower-cased) email checked in any window.
    pub per_account: i64,
    /// Attempts from one client address checked in any window.
    pub per_address: i64,
    /// How long a counted attempt holds its place.
    pub window: Duration,
}

impl Default for LoginLimits {
    fn default() -> Self {
        Self {
            per_account: MAX_PER_EMAIL,
            per_address: MAX_PER_ADDRESS,
            window: Duration::from_secs(WINDOW_MINUTES as u64 * 60),
        }
    }
}

impl LoginLimits {
    /// The window in seconds, as PostgreSQL's `make_interval` takes it.
    fn window_secs(&self) -> f64 {
        self.window.as_secs_f64()
    }
}

/// Advisory lock classes (first key of `pg_advisory_xact_lock(int, int)`).
/// A transaction takes the email lock before the address lock and holds one
/// of each at most, so two attempts cannot wait on each other.
const EMAIL_LOCK: i32 = 7320;
const ADDRESS_LOCK: i32 = 7321;

pub enum Admission {
    /// Counted; the id withdraws it if the password could not be checked.
    Counted(i64),
    /// Refused and not counted: the next attempt may come after this.
    Refused { retry_after: Duration },
}

impl Admission {
    /// From a counting query's answer: the new row's id, or else the
    /// milliseconds until a place frees.
    pub(crate) fn from_query(id: Option<i64>, wait_ms: Option<f64>) -> Self {
        match id {
            Some(id) => Admission::Counted(id),
            None => Admission::Refused {
                // Whole microseconds as PostgreSQL measured them: rounded
                // up to seconds later, never down.
                retry_after: Duration::from_secs_f64(wait_ms.unwrap_or(0.0).max(0.0) / 1000.0),
            },
        }
    }
}

/// Counts an attempt by `email` from `client_addr`, unless either has used up
/// its attempts in the window.
pub async fn admit(
    central: &PgPool,
    email: &str,
    client_addr: &str,
    limits: &LoginLimits,
) -> Result<Admission, sqlx::Error> {
    let mut tx = central.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext(lower($2)))")
        .bind(EMAIL_LOCK)
        .bind(email)
        .execute(&mut *tx)
        .await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
        .bind(ADDRESS_LOCK)
        .bind(client_addr)
        .execute(&mut *tx)
        .await?;
    // For each limit reached, the time until the attempt that reached it
    // (the newest `max`-th) leaves the window; the later of the two. The
    // clock is read now, not at the transaction's start: the transaction
    // may have begun before the attempts it then waited for on the locks.
    let (id, wait_ms): (Option<i64>, Option<f64>) = sqlx::query_as(
        "WITH window_start AS (SELECT clock_timestamp() - make_interval(secs => $3) AS at),
              wait AS (
                SELECT GREATEST(
                  (SELECT failed_at FROM login_failures, window_start
                    WHERE email = lower($1) AND failed_at > window_start.at
                    ORDER BY failed_at DESC OFFSET $4 - 1 LIMIT 1),
                  (SELECT failed_at FROM login_failures, window_start
                    WHERE client_addr = $2 AND failed_at > window_start.at
                    ORDER BY failed_at DESC OFFSET $5 - 1 LIMIT 1)
                ) + make_interval(secs => $3) - clock_timestamp() AS remaining),
              counted AS (
                INSERT INTO login_failures (email, client_addr)
                SELECT lower($1), $2 FROM wait WHERE wait.remaining IS NULL
                RETURNING id)
         SELECT (SELECT id FROM counted),
                EXTRACT(EPOCH FROM (SELECT remaining FROM wait))::float8 * 1000",
    )
    .bind(email)
    .bind(client_addr)
    .bind(limits.window_secs())
    .bind(limits.per_account)
    .bind(limits.per_address)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Admission::from_query(id, wait_ms))
}

/// Takes back an attempt whose password was never checked (the server was
/// too busy).
pub async fn withdraw(central: &PgPool, id: i64) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM login_failures WHERE id = $1")
        .bind(id)
        .execute(central)
        .await?;
    Ok(())
}

/// A successful login forgives the account's earlier attempts.
pub async fn clear(central: &PgPool, email: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM login_failures WHERE email = lower($1)")
        .bind(email)
        .execute(central)
        .await?;
    Ok(())
}

/// Deletes the failures older than the window: they no longer count.
/// Returns the number deleted.
pub async fn purge_expired(central: &PgPool, limits: &LoginLimits) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "DELETE FROM login_failures WHERE failed_at <= now() - make_interval(secs => $1)",
    )
    .bind(limits.window_secs())
    .execute(central)
    .await?;
    Ok(done.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_keeps_the_wait_to_the_microsecond() {
        let Admission::Refused { retry_after } = Admission::from_query(None, Some(3000.0004))
        else {
            panic!("refused");
        };
        assert!(retry_after > Duration::from_secs(3), "{retry_after:?}");
        assert!(matches!(
            Admission::from_query(None, Some(-5.0)),
            Admission::Refused { retry_after } if retry_after.is_zero()
        ));
        assert!(matches!(
            Admission::from_query(Some(7), None),
            Admission::Counted(7)
        ));
    }
}
