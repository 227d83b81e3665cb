//! Platform administration, for the API's `super_admin` and the command
//! line alike: super admin accounts, the clinic directory (status,
//! placement, schema version, size: never patient data), and suspending or
//! reactivating a clinic.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use sqlx::PgPool;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::password;
use crate::auth::roles::Role;
use crate::central::users::{self, NewUser, UserRecord};
use crate::central::{audit, companies};
use crate::tenancy::naming::ClinicId;
use crate::validation;

#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    #[error("{0}")]
    Invalid(String),
    #[error("an account with this email already exists")]
    EmailTaken,
    #[error("central database")]
    Database(#[from] sqlx::Error),
    #[error("password hashing failed")]
    Hash(#[from] password::HashError),
}

/// Creates a platform `super_admin` account (no clinic).
pub async fn create_super_admin(
    central: &PgPool,
    email: &str,
    password: String,
) -> Result<UserRecord, PlatformError> {
    let email = validation::email(email.to_owned())
        .map_err(|m| PlatformError::Invalid(format!("email {m}")))?;
    let password = validation::password(password)
        .map_err(|m| PlatformError::Invalid(format!("password {m}")))?;
    let hash = password::hash(password).await?;
    let mut conn = central.acquire().await?;
    let user = users::insert(
        &mut conn,
        &NewUser {
            id: Uuid::new_v4(),
            company_id: None,
            email: &email,
            password_hash: &hash,
            first_name: "Platform",
            last_name: "Administrator",
            role: Role::SuperAdmin,
        },
    )
    .await
    .map_err(|e| match &e {
        sqlx::Error::Database(db) if db.constraint() == Some("users_email_key") => {
            PlatformError::EmailTaken
        }
        _ => PlatformError::Database(e),
    })?;
    let event = audit::PlatformEvent {
        action: "super_admin.created",
        actor_user_id: None,
        company_id: None,
        client_addr: None,
        details: json!({ "userId": user.id }),
    };
    audit::record(central, event).await?;
    Ok(user)
}

/// One clinic as the platform sees it: no patient data.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClinicSummary {
    pub id: Uuid,
    pub name: String,
    /// `active`, `suspended`, `pending` (not provisioned) or `deleted`.
    pub status: String,
    pub database: Option<String>,
    /// The name of its database server in `db_servers`.
    pub server: Option<String>,
    /// The schema version central last recorded for it.
    pub schema_version: i64,
    /// `pg_database_size`, when the database is on the central server.
    pub size_bytes: Option<i64>,
    pub created_at: DateTime<Utc>,
}

/// A clinic in detail (still no patient data).
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClinicDetails {
    #[sqlx(flatten)]
    #[serde(flatten)]
    pub summary: ClinicSummary,
    pub email: String,
    pub phone: Option<String>,
    pub country: String,
    pub subscription_status: String,
    pub subscription_expiry: Option<DateTime<Utc>>,
    pub db_host: Option<String>,
    pub db_port: Option<i32>,
    pub db_user: Option<String>,
    pub staff_accounts: i64,
    pub updated_at: DateTime<Utc>,
}

const SUMMARY_COLUMNS: &str = "
    c.id, c.name,
    CASE WHEN c.deleted_at IS NOT NULL THEN 'deleted'
         WHEN c.provisioning_status <> 'ready' THEN 'pending'
         WHEN c.is_active THEN 'active' ELSE 'suspended' END AS status,
    c.db_name AS database, s.name AS server, c.schema_version,
    (SELECT pg_database_size(d.oid) FROM pg_database d
      WHERE d.datname = c.db_name AND d.datallowconn) AS size_bytes,
    c.created_at";

/// A page of clinics, oldest first, and how many there are in all; `limit`
/// `None` lists every one.
pub async fn list_clinics(
    central: &PgPool,
    limit: Option<i64>,
    offset: i64,
) -> Result<(Vec<ClinicSummary>, i64), sqlx::Error> {
    let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM companies")
        .fetch_one(central)
        .await?;
    let clinics = sqlx::query_as(&format!(
        "SELECT {SUMMARY_COLUMNS}
           FROM companies c LEFT JOIN db_servers s ON s.id = c.db_server_id
          ORDER BY c.created_at, c.id LIMIT $1 OFFSET $2"
    ))
    .bind(limit)
    .bind(offset)
    .fetch_all(central)
    .await?;
    Ok((clinics, total))
}

pub async fn show_clinic(
    central: &PgPool,
    id: ClinicId,
) -> Result<Option<ClinicDetails>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {SUMMARY_COLUMNS}, c.email, c.phone, c.country::text AS country,
                c.subscription_status, c.subscription_expiry, c.db_host, c.db_port, c.db_user,
                (SELECT COUNT(*) FROM users u WHERE u.company_id = c.id AND u.deleted_at IS NULL)
                    AS staff_accounts,
                c.updated_at
           FROM companies c LEFT JOIN db_servers s ON s.id = c.db_server_id
          WHERE c.id = $1"
    ))
    .bind(id.0)
    .fetch_optional(central)
    .await
}

/// Who switched a clinic off or on, for the platform audit.
#[derive(Debug, Clone, Copy)]
pub enum ChangedBy {
    /// A `super_admin` through the API.
    Admin(Uuid),
    CommandLine,
}

/// Suspends (`active = false`) or reactivates a clinic and records the
/// platform event `clinic.suspended` / `clinic.activated`; `false` when no
/// such clinic exists. Running servers notice within their state cache's
/// lifetime (`tenancy::state::STATE_TTL`); the instance that suspends
/// through the API also drops its cache entry and pool at once.
pub async fn set_clinic_active(
    central: &PgPool,
    id: ClinicId,
    active: bool,
    by: ChangedBy,
) -> Result<bool, sqlx::Error> {
    if !companies::set_active(central, id, active).await? {
        return Ok(false);
    }
    let (actor_user_id, via) = match by {
        ChangedBy::Admin(user) => (Some(user), "api"),
        ChangedBy::CommandLine => (None, "command line"),
    };
    let event = audit::PlatformEvent {
        action: if active {
            "clinic.activated"
        } else {
            "clinic.suspended"
        },
        actor_user_id,
        company_id: Some(id.0),
        client_addr: None,
        details: json!({ "via": via }),
    };
    audit::record(central, event).await?;
    Ok(true)
}
