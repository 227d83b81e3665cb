//! `password_links`: one-time links that set an account's password, either
//! the first one (`setup`, for an account made without a password) or a
//! new one (`reset`, for a forgotten password). The token is 32 random
//! bytes handed out once; central keeps only its SHA-256. A link works
//! once and until it expires; issuing a link voids the account's earlier
//! unused ones, so only the newest link an operator handed out works.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::crypto::{random_token, sha256};

/// Why a link was issued (recorded in the platform audit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, sqlx::Type)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum Purpose {
    /// The account has no password yet.
    Setup,
    /// The account's password was forgotten.
    Reset,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Setup => "setup",
            Purpose::Reset => "reset",
        }
    }
}

/// A link's token, in clear (shown once), and when it stops working.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

/// Issues a link for `user_id`, valid for `lifetime`, and voids the
/// account's earlier unused links.
pub async fn issue(
    conn: &mut PgConnection,
    user_id: Uuid,
    purpose: Purpose,
    lifetime: Duration,
) -> Result<IssuedToken, sqlx::Error> {
    sqlx::query("UPDATE password_links SET used_at = now() WHERE user_id = $1 AND used_at IS NULL")
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    let token = random_token(32);
    let expires_at: DateTime<Utc> = sqlx::query_scalar(
        "INSERT INTO password_links (id, user_id, purpose, token_hash, expires_at)
         VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))
         RETURNING expires_at",
    )
    .bind(Uuid::new_v4())
    .bind(user_id)
    .bind(purpose)
    .bind(sha256(token.as_bytes()))
    .bind(lifetime.num_seconds() as f64)
    .fetch_one(conn)
    .await?;
    Ok(IssuedToken { token, expires_at })
}

/// The account a usable link (unused, unexpired) belongs to, without
/// using it: lets a caller refuse a dead link before hashing a password.
pub async fn peek(central: &PgPool, token: &str) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT user_id FROM password_links
          WHERE token_hash = $1 AND used_at IS NULL AND expires_at > now()",
    )
    .bind(sha256(token.as_bytes()))
    .fetch_optional(central)
    .await
}

/// Uses a link, atomically: of two concurrent uses, one gets the account
/// and its purpose, the other `None`, as do unknown, used and expired links.
/// Every other unused link of the account is voided with it.
pub async fn consume(
    conn: &mut PgConnection,
    token: &str,
) -> Result<Option<(Uuid, Purpose)>, sqlx::Error> {
    let used: Option<(Uuid, Purpose)> = sqlx::query_as(
        "UPDATE password_links SET used_at = now()
          WHERE token_hash = $1 AND used_at IS NULL AND expires_at > now()
          RETURNING user_id, purpose",
    )
    .bind(sha256(token.as_bytes()))
    .fetch_optional(&mut *conn)
    .await?;
    if let Some((user_id, _)) = used {
        sqlx::query(
            "UPDATE password_links SET used_at = now() WHERE user_id = $1 AND used_at IS NULL",
        )
        .bind(user_id)
        .execute(conn)
        .await?;
    }
    Ok(used)
}

/// Deletes the links that can no longer be used (expired, used or
/// voided). Returns the number deleted.
pub async fn purge_expired(central: &PgPool) -> Result<u64, sqlx::Error> {
    let done =
        sqlx::query("DELETE FROM password_links WHERE expires_at <= now() OR used_at IS NOT NULL")
            .execute(central)
            .await?;
    Ok(done.rows_affected())
}
