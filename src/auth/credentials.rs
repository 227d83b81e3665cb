//! Setting a password: with a one-time link (`central::password_links`), or
//! by a logged-in user who gives the current one. Either way, in one central
//! transaction, the new hash replaces the old, every refresh token of the
//! account is revoked (its other sessions end when their access tokens
//! expire, within 15 minutes) and the account's failed logins are forgiven.
//! The platform audit records who and how, never a password or a token.

use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use super::password::{HashError, Hasher};
use crate::central::login_failures::{self, Admission, LoginLimits};
use crate::central::password_links;
use crate::central::users::{self, UserRecord};
use crate::central::{audit, refresh_tokens};

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// Unknown, expired or already used link, or an account that is gone
    /// or deactivated.
    #[error("this link is invalid, has expired or was already used")]
    InvalidLink,
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error("too many failed attempts")]
    Throttled { retry_after: std::time::Duration },
    #[error(transparent)]
    Hash(#[from] HashError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Sets the password of the account a link was issued for, and uses the
/// link up. `new_password` has passed the password policy.
pub async fn set_with_link(
    central: &PgPool,
    hasher: &Hasher,
    token: &str,
    new_password: String,
    client_addr: &str,
) -> Result<Uuid, CredentialError> {
    // A dead link is refused before the costly hash.
    if password_links::peek(central, token).await?.is_none() {
        return Err(CredentialError::InvalidLink);
    }
    let hash = hasher.hash(new_password).await?;
    let mut tx = central.begin().await?;
    let (user_id, purpose) = password_links::consume(&mut tx, token)
        .await?
        .ok_or(CredentialError::InvalidLink)?;
    let user = users::find(central, user_id)
        .await?
        .filter(|u| u.is_active)
        .ok_or(CredentialError::InvalidLink)?;
    replace(&mut tx, &user, &hash).await?;
    record(
        &mut *tx,
        "password.link_used",
        &user,
        client_addr,
        json!({"purpose": purpose.as_str()}),
    )
    .await?;
    tx.commit().await?;
    login_failures::clear(central, &user.email).await?;
    Ok(user.id)
}

/// Changes a logged-in user's password. The check of the current password
/// counts as a login attempt (`central::login_failures`): a wrong one is a
/// failed login, and an account or address over its limit is refused
/// before any check.
pub async fn change(
    central: &PgPool,
    hasher: &Hasher,
    user: &UserRecord,
    current_password: String,
    new_password: String,
    client_addr: &str,
    limits: &LoginLimits,
) -> Result<(), CredentialError> {
    let attempt = match login_failures::admit(central, &user.email, client_addr, limits).await? {
        Admission::Counted(id) => id,
        Admission::Refused { retry_after } => {
            return Err(CredentialError::Throttled { retry_after })
        }
    };
    let stored = Some(user.password_hash.clone());
    let matches = match hasher.verify(current_password, stored).await {
        Ok(matches) => matches,
        Err(error) => {
            login_failures::withdraw(central, attempt).await?;
            return Err(error.into());
        }
    };
    if !matches {
        record(
            central,
            "password.change_failed",
            user,
            client_addr,
            json!({}),
        )
        .await?;
        return Err(CredentialError::InvalidCredentials);
    }
    let hash = hasher.hash(new_password).await?;
    let mut tx = central.begin().await?;
    replace(&mut tx, user, &hash).await?;
    record(&mut *tx, "password.changed", user, client_addr, json!({})).await?;
    tx.commit().await?;
    login_failures::clear(central, &user.email).await?;
    Ok(())
}

/// The new hash, and every refresh token revoked (the caller forgives the
/// failed logins once committed).
async fn replace(
    conn: &mut sqlx::PgConnection,
    user: &UserRecord,
    hash: &str,
) -> Result<(), sqlx::Error> {
    users::set_password(conn, user.id, hash).await?;
    refresh_tokens::revoke_all_for_user(&mut *conn, user.id).await
}

async fn record(
    central: impl sqlx::PgExecutor<'_>,
    action: &str,
    user: &UserRecord,
    client_addr: &str,
    mut details: serde_json::Value,
) -> Result<(), sqlx::Error> {
    details["userId"] = json!(user.id);
    audit::record(
        central,
        audit::PlatformEvent {
            action,
            actor_user_id: Some(user.id),
            company_id: user.company_id,
            client_addr: Some(client_addr).filter(|a| !a.is_empty()),
            details,
        },
    )
    .await
}

/// What an account made without a password is given meanwhile: the hash of
/// a random secret nobody knows, so that it verifies nothing yet takes as
/// long to check as a real password.
pub async fn unusable_hash() -> Result<String, HashError> {
    super::password::hash(crate::crypto::random_token(32)).await
}
