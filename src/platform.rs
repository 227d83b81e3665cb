//! Platform administration: super admin accounts, the clinic overview
//! (placement, schema version, size: never patient data), and suspending or
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
use crate::central::{audit, companies, Databases};
use crate::tenancy::naming::ClinicId;
use crate::tenancy::pools::ClinicPools;
use crate::tenancy::state::StateCache;
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

/// A clinic as the platform sees it: no patient data.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClinicOverview {
    pub id: Uuid,
    pub name: String,
    pub email: String,
    pub country: String,
    pub is_active: bool,
    pub subscription_status: String,
    pub provisioning_status: String,
    pub db_server: Option<String>,
    pub db_host: Option<String>,
    pub db_port: Option<i32>,
    pub db_name: Option<String>,
    pub schema_version: i64,
    /// Size of the clinic database on disk, when it exists.
    #[sqlx(default)]
    pub size_bytes: Option<i64>,
    pub created_at: DateTime<Utc>,
}

/// Live clinics (or one), oldest first, with their database sizes.
pub async fn clinic_overviews(
    databases: &Databases,
    only: Option<ClinicId>,
    limit: i64,
    offset: i64,
) -> Result<(Vec<ClinicOverview>, i64), sqlx::Error> {
    let filter = "c.deleted_at IS NULL AND ($1::uuid IS NULL OR c.id = $1)";
    let total: i64 =
        sqlx::query_scalar(&format!("SELECT COUNT(*) FROM companies c WHERE {filter}"))
            .bind(only.map(|id| id.0))
            .fetch_one(&databases.central)
            .await?;
    let mut clinics: Vec<ClinicOverview> = sqlx::query_as(&format!(
        "SELECT c.id, c.name, c.email, c.country::text AS country, c.is_active, c.subscription_status,
                c.provisioning_status, s.name AS db_server, c.db_host, c.db_port, c.db_name,
                c.schema_version, c.created_at
           FROM companies c LEFT JOIN db_servers s ON s.id = c.db_server_id
          WHERE {filter} ORDER BY c.created_at, c.id LIMIT $2 OFFSET $3"
    ))
    .bind(only.map(|id| id.0))
    .bind(limit)
    .bind(offset)
    .fetch_all(&databases.central)
    .await?;
    let names: Vec<String> = clinics.iter().filter_map(|c| c.db_name.clone()).collect();
    let sizes: Vec<(String, i64)> = sqlx::query_as(
        "SELECT datname::text, pg_database_size(oid) FROM pg_database WHERE datname = ANY($1)",
    )
    .bind(&names)
    .fetch_all(&databases.admin)
    .await?;
    for clinic in &mut clinics {
        clinic.size_bytes = sizes
            .iter()
            .find(|(name, _)| Some(name) == clinic.db_name.as_ref())
            .map(|(_, size)| *size);
    }
    Ok((clinics, total))
}

/// Suspends or reactivates a clinic. On this instance it takes effect on
/// the very next request (the state cache entry is dropped and the pool
/// closed); other instances see it when their cache entry expires
/// (`tenancy::state::STATE_TTL`). `false` when there is no such clinic.
pub async fn set_clinic_active(
    databases: &Databases,
    states: &StateCache,
    pools: &ClinicPools,
    id: ClinicId,
    active: bool,
    actor: Option<Uuid>,
) -> Result<bool, sqlx::Error> {
    if !companies::set_active(&databases.central, id, active).await? {
        return Ok(false);
    }
    states.forget(id);
    if !active {
        pools.close(id).await;
    }
    let event = audit::PlatformEvent {
        action: if active {
            "clinic.activated"
        } else {
            "clinic.suspended"
        },
        actor_user_id: actor,
        company_id: Some(id.0),
        client_addr: None,
        details: json!({}),
    };
    audit::record(&databases.central, event).await?;
    Ok(true)
}
