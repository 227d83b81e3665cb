//! `audit_logs`: platform events (logins, registrations, provisioning, staff
//! changes, suspensions). Never patient data or patient names.

use serde_json::Value;
use sqlx::PgExecutor;
use uuid::Uuid;

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
