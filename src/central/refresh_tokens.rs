//! `refresh_tokens`: opaque, single-use tokens stored as SHA-256 hashes.
//! Each refresh rotates the token; presenting a rotated token again is taken
//! as theft and revokes the whole family (every token of that login).
//!
//! A family also has an absolute lifetime (`REFRESH_FAMILY_MAX_DAYS`),
//! counted from its first token's `created_at`: past it, no token of the
//! family refreshes, however recently rotated. Families are purged whole
//! ([`purge_expired`]), so the first token stays as long as its family.

use chrono::{Duration, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::crypto::{random_token, sha256};

pub const LIFETIME: Duration = Duration::days(30);

/// What presenting a refresh token led to.
#[derive(Debug)]
pub enum Rotation {
    /// Valid: this is the new token, of the same family, for this user.
    Rotated { user_id: Uuid, token: String },
    /// Unknown, expired, revoked, or of a family past its lifetime.
    Invalid,
    /// Already rotated: the family is now revoked.
    Reused,
}

/// Issues the first token of a new family (a login or registration).
pub async fn issue(central: &PgPool, user_id: Uuid) -> Result<String, sqlx::Error> {
    let mut conn = central.acquire().await?;
    insert(&mut conn, user_id, Uuid::new_v4()).await
}

async fn insert(
    conn: &mut sqlx::PgConnection,
    user_id: Uuid,
    family_id: Uuid,
) -> Result<String, sqlx::Error> {
    let token = random_token(32);
    sqlx::query(
        "INSERT INTO refresh_tokens (id, user_id, family_id, token_hash, expires_at)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(Uuid::new_v4())
    .bind(user_id)
    .bind(family_id)
    .bind(sha256(token.as_bytes()))
    .bind(Utc::now() + LIFETIME)
    .execute(conn)
    .await?;
    Ok(token)
}

/// Exchanges a token for its successor, atomically: of two concurrent
/// exchanges of one token, one rotates and the other is seen as reuse. A
/// family first issued `family_max_days` ago or earlier counts as expired.
pub async fn rotate(
    central: &PgPool,
    token: &str,
    family_max_days: i32,
) -> Result<Rotation, sqlx::Error> {
    let mut tx = central.begin().await?;
    let row: Option<(Uuid, Uuid, bool, bool, bool)> = sqlx::query_as(
        "SELECT user_id, family_id, rotated_at IS NOT NULL, revoked_at IS NOT NULL,
                expires_at <= now()
                OR (SELECT min(created_at) FROM refresh_tokens family
                     WHERE family.family_id = token.family_id)
                   <= now() - make_interval(days => $2)
           FROM refresh_tokens token WHERE token_hash = $1 FOR UPDATE OF token",
    )
    .bind(sha256(token.as_bytes()))
    .bind(family_max_days)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((user_id, family_id, rotated, revoked, expired)) = row else {
        return Ok(Rotation::Invalid);
    };
    if rotated {
        revoke_family_in(&mut tx, family_id).await?;
        tx.commit().await?;
        return Ok(Rotation::Reused);
    }
    if revoked || expired {
        return Ok(Rotation::Invalid);
    }
    sqlx::query("UPDATE refresh_tokens SET rotated_at = now() WHERE token_hash = $1")
        .bind(sha256(token.as_bytes()))
        .execute(&mut *tx)
        .await?;
    let token = insert(&mut tx, user_id, family_id).await?;
    tx.commit().await?;
    Ok(Rotation::Rotated { user_id, token })
}

/// Revokes the family of `token` (logout). Unknown tokens are ignored.
pub async fn revoke(central: &PgPool, token: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = now()
          WHERE revoked_at IS NULL
            AND family_id = (SELECT family_id FROM refresh_tokens WHERE token_hash = $1)",
    )
    .bind(sha256(token.as_bytes()))
    .execute(central)
    .await?;
    Ok(())
}

/// Revokes every token of one account (deactivation, deletion), on the
/// pool or inside the caller's transaction.
pub async fn revoke_all_for_user(
    central: impl sqlx::PgExecutor<'_>,
    user_id: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL",
    )
    .bind(user_id)
    .execute(central)
    .await?;
    Ok(())
}

async fn revoke_family_in(
    conn: &mut sqlx::PgConnection,
    family_id: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = now() WHERE family_id = $1 AND revoked_at IS NULL",
    )
    .bind(family_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Deletes the families that can no longer refresh: every token expired, or
/// first issued `family_max_days` ago or earlier. A family with one live
/// token is kept whole, so that a rotated token presented again is still
/// recognised as reuse. Returns the number of tokens deleted.
pub async fn purge_expired(central: &PgPool, family_max_days: i32) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "DELETE FROM refresh_tokens WHERE family_id IN (
            SELECT family_id FROM refresh_tokens GROUP BY family_id
            HAVING max(expires_at) <= now()
                OR min(created_at) <= now() - make_interval(days => $1))",
    )
    .bind(family_max_days)
    .execute(central)
    .await?;
    Ok(done.rows_affected())
}
