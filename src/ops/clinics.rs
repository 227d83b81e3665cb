//! `medicalpro clinic list|show|suspend|activate`: what the central
//! database knows of each clinic, and switching a clinic off and on.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

use super::Fleet;
use crate::central::{audit, companies};
use crate::tenancy::naming::ClinicId;

/// One clinic as an operator sees it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
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
    /// `pg_database_size`, when the database is on the admin connection's server.
    pub size_bytes: Option<i64>,
    pub created_at: DateTime<Utc>,
}

/// A clinic in detail.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
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

/// Every clinic, oldest first.
pub async fn list(fleet: &Fleet) -> Result<Vec<ClinicSummary>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {SUMMARY_COLUMNS}
           FROM companies c LEFT JOIN db_servers s ON s.id = c.db_server_id
          ORDER BY c.created_at, c.id"
    ))
    .fetch_all(&fleet.databases.central)
    .await
}

pub async fn show(fleet: &Fleet, id: ClinicId) -> Result<Option<ClinicDetails>, sqlx::Error> {
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
    .fetch_optional(&fleet.databases.central)
    .await
}

/// Suspends (`active = false`) or reactivates a clinic and records the
/// platform event `clinic.suspended` / `clinic.activated`. Running servers
/// notice within their state cache's lifetime (two seconds).
pub async fn set_active(fleet: &Fleet, id: ClinicId, active: bool) -> anyhow::Result<()> {
    let central = &fleet.databases.central;
    if !companies::set_active(central, id, active).await? {
        anyhow::bail!("no clinic has the id {id}");
    }
    let action = if active {
        "clinic.activated"
    } else {
        "clinic.suspended"
    };
    audit::record(
        central,
        audit::PlatformEvent {
            action,
            actor_user_id: None,
            company_id: Some(id.0),
            client_addr: None,
            details: json!({"via": "command line"}),
        },
    )
    .await?;
    Ok(())
}
