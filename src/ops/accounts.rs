//! Staff and platform accounts, as the operator manages them from the
//! command line: creating a clinic account, handing out one-time password
//! links (setup or reset), forgiving failed logins, listing accounts, and
//! deactivating or reactivating one. Every change is recorded in the
//! platform audit (`via: command line`), never with a password or a token.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use sqlx::{PgConnection, PgPool};
use tokio::io::AsyncWriteExt;
use url::Url;
use uuid::Uuid;

use crate::auth::credentials::unusable_hash;
use crate::auth::password;
use crate::auth::roles::Role;
use crate::central::companies;
use crate::central::password_links::{self, Purpose};
use crate::central::users::{self, NewUser, UserRecord};
use crate::central::{audit, refresh_tokens};
use crate::tenancy::naming::ClinicId;
use crate::validation;

/// How long a hook may run before it is stopped.
pub const HOOK_TIMEOUT: Duration = Duration::from_secs(30);

/// Where links point, how long they work, and who sends them.
#[derive(Debug, Clone)]
pub struct LinkSettings {
    /// `PUBLIC_URL`: the web app's address; links go to its
    /// `/reset-password` page.
    pub public_url: Url,
    /// `PASSWORD_LINK_TTL_HOURS`.
    pub lifetime: chrono::Duration,
    /// `PASSWORD_RESET_HOOK`: a program that sends each link.
    pub hook: Option<PathBuf>,
}

/// A link handed out: shown once, never stored in clear.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IssuedLink {
    pub user_id: Uuid,
    pub email: String,
    pub purpose: Purpose,
    pub link: String,
    pub expires_at: DateTime<Utc>,
}

impl LinkSettings {
    /// `<PUBLIC_URL>/reset-password#token=<token>`: the token is in the
    /// fragment, which browsers never send, so no server log holds it.
    pub fn link(&self, token: &str) -> String {
        let base = self.public_url.as_str().trim_end_matches('/');
        format!("{base}/reset-password#token={token}")
    }
}

/// Issues a link for `user` and records it.
pub async fn issue_link(
    central: &PgPool,
    user: &UserRecord,
    purpose: Purpose,
    settings: &LinkSettings,
) -> anyhow::Result<IssuedLink> {
    let mut tx = central.begin().await?;
    let issued = password_links::issue(&mut tx, user.id, purpose, settings.lifetime).await?;
    record(
        &mut tx,
        "password.link_issued",
        user,
        json!({"purpose": purpose.as_str(), "expiresAt": issued.expires_at}),
    )
    .await?;
    tx.commit().await?;
    Ok(IssuedLink {
        user_id: user.id,
        email: user.email.clone(),
        purpose,
        link: settings.link(&issued.token),
        expires_at: issued.expires_at,
    })
}

/// Runs the `PASSWORD_RESET_HOOK` program for one link: no arguments, the
/// link on standard input (one line), and in its environment
/// `MEDICALPRO_LINK_EMAIL`, `MEDICALPRO_LINK_URL`,
/// `MEDICALPRO_LINK_EXPIRES_AT` (RFC 3339) and `MEDICALPRO_LINK_PURPOSE`
/// (`setup` or `reset`). It fails when the program exits non-zero or runs
/// longer than [`HOOK_TIMEOUT`].
pub async fn run_hook(hook: &std::path::Path, link: &IssuedLink) -> anyhow::Result<()> {
    let mut child = tokio::process::Command::new(hook)
        .env("MEDICALPRO_LINK_EMAIL", &link.email)
        .env("MEDICALPRO_LINK_URL", &link.link)
        .env("MEDICALPRO_LINK_EXPIRES_AT", link.expires_at.to_rfc3339())
        .env("MEDICALPRO_LINK_PURPOSE", link.purpose.as_str())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot run PASSWORD_RESET_HOOK {}", hook.display()))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its input is not an error.
        let _ = stdin.write_all(format!("{}\n", link.link).as_bytes()).await;
    }
    let status = tokio::time::timeout(HOOK_TIMEOUT, child.wait())
        .await
        .with_context(|| {
            format!(
                "PASSWORD_RESET_HOOK {} ran longer than {} s and was stopped",
                hook.display(),
                HOOK_TIMEOUT.as_secs()
            )
        })??;
    anyhow::ensure!(
        status.success(),
        "PASSWORD_RESET_HOOK {} failed ({status})",
        hook.display()
    );
    Ok(())
}

/// A clinic account to create. Without a password, the account gets an
/// unusable one and the caller hands out a setup link.
pub struct NewAccount {
    pub clinic: ClinicId,
    pub email: String,
    pub role: Role,
    pub first_name: String,
    pub last_name: String,
    pub password: Option<String>,
}

/// Creates a staff account of an existing, provisioned clinic.
pub async fn create_staff(central: &PgPool, account: NewAccount) -> anyhow::Result<UserRecord> {
    let email = validation::email(account.email).map_err(|m| anyhow::anyhow!("--email {m}"))?;
    let first_name = validation::text(100)(account.first_name)
        .map_err(|m| anyhow::anyhow!("--first-name {m}"))?;
    let last_name =
        validation::text(100)(account.last_name).map_err(|m| anyhow::anyhow!("--last-name {m}"))?;
    anyhow::ensure!(
        account.role != Role::SuperAdmin,
        "--role super_admin is not a clinic role (use `medicalpro user create-super-admin`)"
    );
    let hash = match account.password {
        Some(password) => {
            let password =
                validation::password(password).map_err(|m| anyhow::anyhow!("the password {m}"))?;
            password::hash(password).await?
        }
        None => unusable_hash().await?,
    };
    let id = account.clinic;
    anyhow::ensure!(
        companies::find(central, id).await?.is_some(),
        "no clinic has the id {id}"
    );
    let mut tx = central.begin().await?;
    let user = users::insert(
        &mut tx,
        &NewUser {
            id: Uuid::new_v4(),
            company_id: Some(id.0),
            email: &email,
            password_hash: &hash,
            first_name: &first_name,
            last_name: &last_name,
            role: account.role,
        },
    )
    .await
    .map_err(|e| match &e {
        sqlx::Error::Database(db) if db.constraint() == Some("users_email_key") => {
            anyhow::anyhow!("an account with this email already exists")
        }
        _ => anyhow::Error::new(e).context("central database"),
    })?;
    record(&mut tx, "staff.created", &user, json!({"role": user.role})).await?;
    tx.commit().await?;
    Ok(user)
}

/// Issues a reset link for the live, active account with this email.
pub async fn reset_link(
    central: &PgPool,
    email: &str,
    settings: &LinkSettings,
) -> anyhow::Result<IssuedLink> {
    let user = live_account(central, email).await?;
    anyhow::ensure!(
        user.is_active,
        "the account {} is deactivated: reactivate it first (`medicalpro user activate`)",
        user.email
    );
    issue_link(central, &user, Purpose::Reset, settings).await
}

/// Forgives the failed logins of the account with this email: it may log
/// in again at once. The number of failures forgiven.
pub async fn unlock(central: &PgPool, email: &str) -> anyhow::Result<u64> {
    let user = live_account(central, email).await?;
    // `central::login_failures::clear`, counting what it forgives.
    let forgiven: u64 = sqlx::query("DELETE FROM login_failures WHERE email = lower($1)")
        .bind(&user.email)
        .execute(central)
        .await?
        .rows_affected();
    let mut conn = central.acquire().await?;
    record(
        &mut conn,
        "account.unlocked",
        &user,
        json!({"failuresForgiven": forgiven}),
    )
    .await?;
    Ok(forgiven)
}

/// Deactivates (`active = false`: it cannot log in, and its refresh tokens
/// are revoked) or reactivates the account with this email. The platform's
/// last active super admin, and a clinic's last active admin, are not
/// deactivated. `false` when the account already was in that state.
pub async fn set_active(central: &PgPool, email: &str, active: bool) -> anyhow::Result<bool> {
    let mut tx = central.begin().await?;
    let user = live_account(central, email).await?;
    // Lock the group the account belongs to first, then the account, as
    // the `/users` routes do.
    let peers = match user.company_id {
        None => users::lock_active_super_admins(&mut tx).await?,
        Some(clinic) => users::lock_active_admins(&mut tx, clinic).await?,
    };
    let user = users::find_by_email_for_update(&mut tx, email)
        .await?
        .with_context(|| format!("no account has the email {email}"))?;
    if user.is_active == active {
        return Ok(false);
    }
    if !active && peers <= 1 {
        match user.role {
            Role::SuperAdmin => anyhow::bail!(
                "{} is the last active super admin: create or reactivate another first",
                user.email
            ),
            Role::Admin => anyhow::bail!(
                "{} is the last active admin of clinic {}: create or reactivate another admin first",
                user.email,
                user.company_id.unwrap_or_default()
            ),
            _ => {}
        }
    }
    users::set_active(&mut tx, user.id, active).await?;
    if !active {
        refresh_tokens::revoke_all_for_user(&mut *tx, user.id).await?;
    }
    let action = if active {
        "account.activated"
    } else {
        "account.deactivated"
    };
    record(&mut tx, action, &user, json!({"role": user.role})).await?;
    tx.commit().await?;
    Ok(true)
}

async fn live_account(central: &PgPool, email: &str) -> anyhow::Result<UserRecord> {
    users::find_by_email(central, email)
        .await?
        .with_context(|| format!("no account has the email {email}"))
}

/// A platform event about one account, made from the command line.
async fn record(
    conn: &mut PgConnection,
    action: &str,
    user: &UserRecord,
    mut details: serde_json::Value,
) -> Result<(), sqlx::Error> {
    details["userId"] = json!(user.id);
    details["via"] = json!("command line");
    audit::record(
        conn,
        audit::PlatformEvent {
            action,
            actor_user_id: None,
            company_id: user.company_id,
            client_addr: None,
            details,
        },
    )
    .await
}
