//! Platform administration, for the API's `super_admin` and the command
//! line alike: super admin accounts, the clinic directory (status,
//! placement, schema version, size: never patient data), renaming a clinic
//! or changing its email, suspending or reactivating it, and the staff
//! accounts of every clinic.

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
use crate::clinic::{like_pattern, Page};
use crate::tenancy::naming::ClinicId;
use crate::validation::{self, FieldErrors};

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
    pub email: String,
    /// `active`, `suspended`, `pending` (not provisioned) or `deleted`.
    pub status: String,
    /// `dedicated` or `shared`.
    pub tier: String,
    /// Its database, or (shared tier) `<pod database>.<schema>`.
    pub database: Option<String>,
    /// The name of its database server in `db_servers`.
    pub server: Option<String>,
    /// The schema version central last recorded for it.
    pub schema_version: i64,
    /// `pg_database_size` (dedicated tier), when the database is on the
    /// central server; shared-tier schema sizes are in `/metrics`.
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
    c.id, c.name, c.email,
    CASE WHEN c.deleted_at IS NOT NULL THEN 'deleted'
         WHEN c.provisioning_status <> 'ready' THEN 'pending'
         WHEN c.is_active THEN 'active' ELSE 'suspended' END AS status,
    c.tier, CASE WHEN c.db_schema IS NULL THEN c.db_name ELSE c.db_name || '.' || c.db_schema END AS database,
    s.name AS server, c.schema_version,
    (SELECT pg_database_size(d.oid) FROM pg_database d
      WHERE d.datname = c.db_name AND d.datallowconn AND c.db_schema IS NULL) AS size_bytes,
    c.created_at";

/// A page of clinics, oldest first, and how many match in all; `search`
/// matches the name or the email (any case), `limit` `None` lists every one.
pub async fn list_clinics(
    central: &PgPool,
    search: Option<&str>,
    limit: Option<i64>,
    offset: i64,
) -> Result<(Vec<ClinicSummary>, i64), sqlx::Error> {
    let pattern = search.map(like_pattern);
    let filter = "($1::text IS NULL OR c.name ILIKE $1 OR c.email ILIKE $1)";
    let total: i64 =
        sqlx::query_scalar(&format!("SELECT COUNT(*) FROM companies c WHERE {filter}"))
            .bind(&pattern)
            .fetch_one(central)
            .await?;
    let clinics = sqlx::query_as(&format!(
        "SELECT {SUMMARY_COLUMNS}
           FROM companies c LEFT JOIN db_servers s ON s.id = c.db_server_id
          WHERE {filter}
          ORDER BY c.created_at, c.id LIMIT $2 OFFSET $3"
    ))
    .bind(&pattern)
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

impl ChangedBy {
    fn actor(self) -> Option<Uuid> {
        match self {
            ChangedBy::Admin(user) => Some(user),
            ChangedBy::CommandLine => None,
        }
    }

    fn via(self) -> &'static str {
        match self {
            ChangedBy::Admin(_) => "api",
            ChangedBy::CommandLine => "command line",
        }
    }
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
    let event = audit::PlatformEvent {
        action: if active {
            "clinic.activated"
        } else {
            "clinic.suspended"
        },
        actor_user_id: by.actor(),
        company_id: Some(id.0),
        client_addr: None,
        details: json!({ "via": by.via() }),
    };
    audit::record(central, event).await?;
    Ok(true)
}

/// A clinic's new name and email (either or both), checked as at
/// registration.
#[derive(Debug, Clone, Default)]
pub struct ClinicChange {
    pub name: Option<String>,
    pub email: Option<String>,
}

impl ClinicChange {
    /// Checks the given values: `name` (1 to 200 characters) and `email`
    /// as at registration.
    pub fn parse(name: Option<String>, email: Option<String>) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::default();
        let name = validation::optional(name, validation::text(200), "name", &mut errors);
        let email = validation::optional(email, validation::email, "email", &mut errors);
        if name.is_none() && email.is_none() && errors.is_empty() {
            errors.add("body", "give the new name, the new email, or both");
        }
        errors.finish(ClinicChange { name, email })
    }

    /// The names of the fields it changes, for the platform audit.
    fn fields(&self) -> Vec<&'static str> {
        validation::present_names([
            ("name", self.name.is_some()),
            ("email", self.email.is_some()),
        ])
    }
}

/// Renames a live clinic and/or changes its email, and records the platform
/// event `clinic.updated` (the names of the changed fields only). `None`
/// when no live clinic has this id; [`PlatformError::EmailTaken`] when
/// another clinic, or an account that is not this clinic's, uses the
/// email (any case): a clinic's own staff may share its address, as its
/// first admin does.
pub async fn update_clinic(
    central: &PgPool,
    id: ClinicId,
    change: &ClinicChange,
    by: ChangedBy,
) -> Result<Option<ClinicDetails>, PlatformError> {
    let mut tx = central.begin().await?;
    if let Some(email) = &change.email {
        if companies::email_used_elsewhere(&mut tx, id, email).await? {
            return Err(PlatformError::EmailTaken);
        }
    }
    let updated =
        companies::update_identity(&mut tx, id, change.name.as_deref(), change.email.as_deref())
            .await
            .map_err(|e| match &e {
                sqlx::Error::Database(db) if db.constraint() == Some("companies_email_key") => {
                    PlatformError::EmailTaken
                }
                _ => PlatformError::Database(e),
            })?;
    if !updated {
        return Ok(None);
    }
    let event = audit::PlatformEvent {
        action: "clinic.updated",
        actor_user_id: by.actor(),
        company_id: Some(id.0),
        client_addr: None,
        details: json!({ "via": by.via(), "fields": change.fields() }),
    };
    audit::record(&mut *tx, event).await?;
    tx.commit().await?;
    Ok(show_clinic(central, id).await?)
}

/// A staff account as the platform sees it, whatever its clinic: no
/// password hash, no patient data.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StaffAccount {
    pub id: Uuid,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    /// `admin`, `doctor`, `secretary`, `readonly`, or `super_admin`.
    pub role: String,
    /// `None` for a platform `super_admin`.
    pub clinic_id: Option<Uuid>,
    pub clinic_name: Option<String>,
    pub is_active: bool,
    /// `None` until its first login.
    pub last_login_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// A page of live accounts of every clinic (and the platform's), by clinic
/// then name, and how many match; `search` matches names, email and the
/// clinic's name (any case).
pub async fn list_staff(
    central: &PgPool,
    search: Option<&str>,
    page: Page,
) -> Result<(Vec<StaffAccount>, i64), sqlx::Error> {
    let pattern = search.map(like_pattern);
    let filter = "u.deleted_at IS NULL AND ($1::text IS NULL
        OR u.first_name ILIKE $1 OR u.last_name ILIKE $1 OR u.email ILIKE $1
        OR (u.first_name || ' ' || u.last_name) ILIKE $1 OR c.name ILIKE $1)";
    let from = "users u LEFT JOIN companies c ON c.id = u.company_id";
    let total: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {from} WHERE {filter}"))
        .bind(&pattern)
        .fetch_one(central)
        .await?;
    let staff = sqlx::query_as(&format!(
        "SELECT u.id, u.email, u.first_name, u.last_name, u.role, u.company_id AS clinic_id,
                c.name AS clinic_name, u.is_active, u.last_login_at, u.created_at
           FROM {from} WHERE {filter}
          ORDER BY c.name NULLS FIRST, c.id, lower(u.last_name), lower(u.first_name), u.id
          LIMIT $2 OFFSET $3"
    ))
    .bind(&pattern)
    .bind(page.limit)
    .bind(page.offset)
    .fetch_all(central)
    .await?;
    Ok((staff, total))
}
