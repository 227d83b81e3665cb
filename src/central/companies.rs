//! `companies`: one row per clinic, with where its database lives.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use utoipa::ToSchema;
use uuid::Uuid;

use super::notify::{self, Change};
use super::pods::Pod;
use crate::tenancy::naming::ClinicId;

/// A clinic as the API shows it (no placement, no secrets).
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Company {
    pub id: Uuid,
    pub name: String,
    pub email: String,
    pub phone: Option<String>,
    pub country: String,
    pub is_active: bool,
    pub subscription_status: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COMPANY_COLUMNS: &str =
    "id, name, email, phone, country::text AS country, is_active, subscription_status, created_at, updated_at";

/// Where a clinic's database lives and how the server logs in to it: the
/// clinic's own login role (dedicated tier), or its pod's (shared tier).
#[derive(Debug, Clone)]
pub struct Placement {
    pub db_host: String,
    pub db_port: i32,
    pub db_name: String,
    /// The role the server logs in as.
    pub db_user: String,
    /// Its password, sealed with the clinic id (dedicated) or the pod id
    /// (shared) as associated data.
    pub db_password_sealed: Vec<u8>,
    /// A password being rotated in (see `ops::keys`).
    pub db_password_next_sealed: Option<Vec<u8>>,
    /// Shared tier: the clinic's pod, schema and serving role, which every
    /// transaction takes on (`SET LOCAL ROLE`, `SET LOCAL search_path`).
    pub shared: Option<SharedPlace>,
}

/// A shared-tier clinic's place inside its pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedPlace {
    pub pod_id: Uuid,
    pub schema: String,
    pub serving_role: String,
}

impl Placement {
    /// A dedicated clinic's: its database, and its login role with its
    /// password, sealed.
    pub fn dedicated(host: &str, port: i32, database: &str, login: &str, sealed: Vec<u8>) -> Self {
        Self {
            db_host: host.to_owned(),
            db_port: port,
            db_name: database.to_owned(),
            db_user: login.to_owned(),
            db_password_sealed: sealed,
            db_password_next_sealed: None,
            shared: None,
        }
    }

    /// A shared clinic's: its schema and serving role in `pod`, reached
    /// with the pod's login.
    pub fn shared(host: &str, port: i32, pod: &Pod, schema: &str, serving_role: &str) -> Self {
        Self {
            db_host: host.to_owned(),
            db_port: port,
            db_name: pod.db_name.clone(),
            db_user: pod.db_user.clone(),
            db_password_sealed: Vec::new(),
            db_password_next_sealed: None,
            shared: Some(SharedPlace {
                pod_id: pod.id,
                schema: schema.to_owned(),
                serving_role: serving_role.to_owned(),
            }),
        }
    }

    /// The sealed passwords to try, the one in place first.
    pub fn sealed_passwords(&self) -> impl Iterator<Item = &[u8]> {
        std::iter::once(self.db_password_sealed.as_slice())
            .chain(self.db_password_next_sealed.as_deref())
    }

    /// The clinic's schema in its database.
    pub fn schema(&self) -> &str {
        self.shared
            .as_ref()
            .map_or("public", |shared| &shared.schema)
    }

    /// The associated data the passwords are sealed with.
    pub fn sealed_for(&self, clinic: ClinicId) -> Uuid {
        self.shared
            .as_ref()
            .map_or(clinic.0, |shared| shared.pod_id)
    }
}

/// Whether a clinic may be served right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClinicState {
    Active,
    /// Suspended, deleted, or not (yet) provisioned.
    Inactive,
    Missing,
}

pub struct NewCompany<'a> {
    pub id: ClinicId,
    /// The server its database goes to: the row holds its place there.
    pub server_id: Uuid,
    pub name: &'a str,
    pub email: &'a str,
    pub phone: Option<&'a str>,
    pub country: &'a str,
    /// Shared tier: the pod its schema goes to.
    pub pod_id: Option<Uuid>,
}

/// Whether a clinic or a live account already uses `email` (either would
/// make a registration with it fail on a unique index).
pub async fn email_taken(central: &PgPool, email: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM companies WHERE lower(email) = lower($1))
             OR EXISTS (SELECT 1 FROM users WHERE lower(email) = lower($1) AND deleted_at IS NULL)",
    )
    .bind(email)
    .fetch_one(central)
    .await
}

/// Inserts a clinic in `pending` state (not served until provisioned),
/// placed on its server.
pub async fn insert_pending(
    conn: &mut PgConnection,
    company: &NewCompany<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO companies (id, name, email, phone, country, db_server_id, pod_id, tier)
         VALUES ($1, $2, $3, $4, $5, $6, $7, CASE WHEN $7::uuid IS NULL THEN 'dedicated' ELSE 'shared' END)",
    )
    .bind(company.id.0)
    .bind(company.name)
    .bind(company.email)
    .bind(company.phone)
    .bind(company.country)
    .bind(company.server_id)
    .bind(company.pod_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records the clinic's placement and makes it servable. A shared-tier
/// clinic's row names its pod, schema and serving role (`db_user`) and
/// holds no password: the pod's is in `pods`.
pub async fn mark_ready(
    central: &PgPool,
    id: ClinicId,
    server_id: Uuid,
    placement: &Placement,
    schema_version: i64,
) -> Result<(), sqlx::Error> {
    let mut tx = central.begin().await?;
    let shared = placement.shared.as_ref();
    sqlx::query(
        "UPDATE companies
            SET provisioning_status = 'ready', db_server_id = $2, db_host = $3, db_port = $4,
                db_name = $5, db_user = COALESCE($10, $6),
                db_password_sealed = CASE WHEN $8::uuid IS NULL THEN $7 END,
                schema_version = $11, tier = CASE WHEN $8::uuid IS NULL THEN 'dedicated' ELSE 'shared' END,
                pod_id = $8, db_schema = $9, updated_at = now()
          WHERE id = $1",
    )
    .bind(id.0)
    .bind(server_id)
    .bind(&placement.db_host)
    .bind(placement.db_port)
    .bind(&placement.db_name)
    .bind(&placement.db_user)
    .bind(&placement.db_password_sealed)
    .bind(shared.map(|s| s.pod_id))
    .bind(shared.map(|s| s.schema.as_str()))
    .bind(shared.map(|s| s.serving_role.as_str()))
    .bind(schema_version)
    .execute(&mut *tx)
    .await?;
    notify::send(&mut *tx, Change::Clinic(id)).await?;
    tx.commit().await
}

/// Removes a clinic row outright (provisioning rollback); its users go with it.
pub async fn delete(central: &PgPool, id: ClinicId) -> Result<(), sqlx::Error> {
    let mut tx = central.begin().await?;
    sqlx::query("DELETE FROM companies WHERE id = $1")
        .bind(id.0)
        .execute(&mut *tx)
        .await?;
    notify::send(&mut *tx, Change::Clinic(id)).await?;
    tx.commit().await
}

/// Turns a clinic's row into a tombstone: deleted and inactive, its name
/// emptied, its email replaced by its id (not an address, and free again),
/// its phone removed. The id, country, subscription, placement and dates
/// stay. `false` when no live clinic has this id.
pub async fn tombstone(conn: &mut PgConnection, id: ClinicId) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE companies
            SET name = '', email = id::text, phone = NULL, is_active = false,
                deleted_at = now(), updated_at = now()
          WHERE id = $1 AND deleted_at IS NULL",
    )
    .bind(id.0)
    .execute(&mut *conn)
    .await?;
    notify::send(&mut *conn, Change::Clinic(id)).await?;
    Ok(done.rows_affected() == 1)
}

pub async fn find(central: &PgPool, id: ClinicId) -> Result<Option<Company>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COMPANY_COLUMNS} FROM companies WHERE id = $1 AND deleted_at IS NULL"
    ))
    .bind(id.0)
    .fetch_optional(central)
    .await
}

pub async fn state(central: &PgPool, id: ClinicId) -> Result<ClinicState, sqlx::Error> {
    let row: Option<(bool,)> = sqlx::query_as(
        "SELECT is_active AND deleted_at IS NULL AND provisioning_status = 'ready'
           FROM companies WHERE id = $1",
    )
    .bind(id.0)
    .fetch_optional(central)
    .await?;
    Ok(match row {
        Some((true,)) => ClinicState::Active,
        Some((false,)) => ClinicState::Inactive,
        None => ClinicState::Missing,
    })
}

/// The placement of a provisioned clinic.
pub async fn placement(central: &PgPool, id: ClinicId) -> Result<Option<Placement>, sqlx::Error> {
    type Row = (
        String,
        i32,
        String,
        String,
        Vec<u8>,
        Option<Vec<u8>>,
        Option<Uuid>,
        Option<String>,
        String,
    );
    let row: Option<Row> = sqlx::query_as(
        "SELECT c.db_host, c.db_port, c.db_name, COALESCE(p.db_user, c.db_user),
                COALESCE(p.db_password_sealed, c.db_password_sealed),
                CASE WHEN p.id IS NULL THEN c.db_password_next_sealed ELSE p.db_password_next_sealed END,
                c.pod_id, c.db_schema, c.db_user
           FROM companies c LEFT JOIN pods p ON p.id = c.pod_id
          WHERE c.id = $1 AND c.provisioning_status = 'ready'",
    )
    .bind(id.0)
    .fetch_optional(central)
    .await?;
    Ok(row.map(
        |(host, port, name, user, sealed, next, pod, schema, role)| Placement {
            db_host: host,
            db_port: port,
            db_name: name,
            db_user: user,
            db_password_sealed: sealed,
            db_password_next_sealed: next,
            shared: pod.zip(schema).map(|(pod_id, schema)| SharedPlace {
                pod_id,
                schema,
                serving_role: role,
            }),
        },
    ))
}

/// Suspends (`false`) or reactivates (`true`) a live clinic; `false` when no
/// such clinic exists. Reactivating cancels a closure (`clinic close`).
/// Every instance is told ([`Change::Clinic`]); callers record the platform
/// audit event.
pub async fn set_active(central: &PgPool, id: ClinicId, active: bool) -> Result<bool, sqlx::Error> {
    let mut tx = central.begin().await?;
    let done = sqlx::query(
        "UPDATE companies
            SET is_active = $2, updated_at = now(),
                destroy_after = CASE WHEN $2 THEN NULL ELSE destroy_after END
          WHERE id = $1 AND deleted_at IS NULL",
    )
    .bind(id.0)
    .bind(active)
    .execute(&mut *tx)
    .await?;
    notify::send(&mut *tx, Change::Clinic(id)).await?;
    tx.commit().await?;
    Ok(done.rows_affected() == 1)
}

/// Whether another clinic, or a live account that is not one of this
/// clinic's, uses `email` (any case).
pub async fn email_used_elsewhere(
    conn: &mut PgConnection,
    id: ClinicId,
    email: &str,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM companies WHERE lower(email) = lower($2) AND id <> $1)
             OR EXISTS (SELECT 1 FROM users WHERE lower(email) = lower($2) AND deleted_at IS NULL
                                              AND company_id IS DISTINCT FROM $1)",
    )
    .bind(id.0)
    .bind(email)
    .fetch_one(conn)
    .await
}

/// Sets a live clinic's name and/or email (`None` keeps it); `false` when
/// no live clinic has this id. Another clinic's email (any case) violates
/// `companies_email_key`.
pub async fn update_identity(
    conn: &mut PgConnection,
    id: ClinicId,
    name: Option<&str>,
    email: Option<&str>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE companies SET name = COALESCE($2, name), email = COALESCE($3, email), updated_at = now()
          WHERE id = $1 AND deleted_at IS NULL",
    )
    .bind(id.0)
    .bind(name)
    .bind(email)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}
