//! `audit_logs`: platform events (logins, registrations, provisioning, staff
//! changes, suspensions). Never patient data or patient names.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::{PgExecutor, PgPool};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::clinic::Page;

/// One platform event.
pub struct PlatformEvent<'a> {
    pub action: &'a str,
    pub actor_user_id: Option<Uuid>,
    pub company_id: Option<Uuid>,
    pub client_addr: Option<&'a str>,
    pub details: Value,
}

/// Records one event, on the pool or inside the caller's transaction.
pub async fn record(
    central: impl PgExecutor<'_>,
    event: PlatformEvent<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO audit_logs (action, actor_user_id, company_id, client_addr, details)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(event.action)
    .bind(event.actor_user_id)
    .bind(event.company_id)
    .bind(event.client_addr)
    .bind(event.details)
    .execute(central)
    .await?;
    Ok(())
}

/// A recorded platform event, as `GET /admin/audit` shows it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordedEvent {
    pub id: i64,
    pub occurred_at: DateTime<Utc>,
    /// `clinic.provisioned`, `clinic.updated`, `clinic.suspended`,
    /// `staff.created`, `login.failed`, `audit.anchored`, `audit.restored`, ...
    pub action: String,
    pub actor_user_id: Option<Uuid>,
    pub clinic_id: Option<Uuid>,
    pub client_addr: Option<String>,
    #[schema(value_type = Object)]
    pub details: Value,
}

/// Which platform events to list.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub action: Option<String>,
    pub clinic_id: Option<Uuid>,
    /// At or after.
    pub from: Option<DateTime<Utc>>,
    /// Before.
    pub to: Option<DateTime<Utc>>,
}

/// Events matching `filter`, newest first, and how many match in all.
pub async fn list(
    central: &PgPool,
    filter: &EventFilter,
    page: Page,
) -> Result<(Vec<RecordedEvent>, i64), sqlx::Error> {
    const FILTER: &str = "($1::text IS NULL OR action = $1)
        AND ($2::uuid IS NULL OR company_id = $2)
        AND ($3::timestamptz IS NULL OR occurred_at >= $3)
        AND ($4::timestamptz IS NULL OR occurred_at < $4)";
    let total: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM audit_logs WHERE {FILTER}"))
        .bind(&filter.action)
        .bind(filter.clinic_id)
        .bind(filter.from)
        .bind(filter.to)
        .fetch_one(central)
        .await?;
    let events = sqlx::query_as(&format!(
        "SELECT id, occurred_at, action, actor_user_id, company_id AS clinic_id, client_addr, details
           FROM audit_logs WHERE {FILTER} ORDER BY id DESC LIMIT $5 OFFSET $6"
    ))
    .bind(&filter.action)
    .bind(filter.clinic_id)
    .bind(filter.from)
    .bind(filter.to)
    .bind(page.limit)
    .bind(page.offset)
    .fetch_all(central)
    .await?;
    Ok((events, total))
}
