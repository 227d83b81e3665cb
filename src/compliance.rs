//! `medicalpro audit verify`: walks a clinic's audit chain (as the admin
//! role, which owns the trail) and checks it against the last head anchored
//! in the central database, so that removing the newest rows, which the
//! chain alone cannot reveal, is caught too. A sound chain is anchored anew.
//! Pending events (appended by requests, not yet chained) are sealed first.

use serde::Serialize;
use serde_json::json;
use sqlx::postgres::PgPoolOptions;
use sqlx::Row;

use crate::central::{audit, companies, Databases};
use crate::clinic::audit::{seal, verify_chain, BrokenLink};
use crate::tenancy::naming::ClinicId;

/// The outcome for one clinic.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    pub clinic_id: ClinicId,
    pub events: i64,
    /// The first broken link, `None` when the trail is intact.
    pub broken: Option<BrokenLink>,
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("clinic {0} has no provisioned database")]
    UnknownClinic(ClinicId),
    #[error("database")]
    Database(#[from] sqlx::Error),
}

/// Verifies one clinic's trail and, when sound, anchors its head.
pub async fn verify_clinic(
    databases: &Databases,
    id: ClinicId,
) -> Result<Verification, VerifyError> {
    let placement = companies::placement(&databases.central, id)
        .await?
        .ok_or(VerifyError::UnknownClinic(id))?;
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(crate::tenancy::ddl::admin_session(
            databases
                .admin_on_server(&placement.db_host, placement.db_port)
                .database(&placement.db_name),
        ))
        .await?;
    let result = check(databases, &pool, id).await;
    pool.close().await;
    result
}

async fn check(
    databases: &Databases,
    pool: &sqlx::PgPool,
    id: ClinicId,
) -> Result<Verification, VerifyError> {
    let mut conn = pool.acquire().await?;
    seal(&mut conn).await?;
    let report = verify_chain(&mut conn).await?;
    let mut broken = report.broken;
    let anchor = sqlx::query(
        "SELECT (details->>'lastId')::bigint AS last_id, details->>'lastHash' AS last_hash
           FROM audit_logs WHERE company_id = $1 AND action = 'audit.anchored'
          ORDER BY id DESC LIMIT 1",
    )
    .bind(id.0)
    .fetch_optional(&databases.central)
    .await?;
    if broken.is_none() {
        if let Some(anchor) = anchor {
            let last_id: i64 = anchor.try_get("last_id")?;
            let last_hash: String = anchor.try_get("last_hash")?;
            let stored: Option<Vec<u8>> =
                sqlx::query_scalar("SELECT hash FROM public.audit_events WHERE id = $1")
                    .bind(last_id)
                    .fetch_optional(&mut *conn)
                    .await?;
            if stored.as_deref().map(crate::crypto::hex) != Some(last_hash) {
                broken = Some(BrokenLink {
                    id: last_id,
                    reason: "the row anchored at the last verification is missing or altered"
                        .into(),
                });
            }
        }
    }
    if broken.is_none() && report.events > 0 {
        let head: (i64, Vec<u8>) =
            sqlx::query_as("SELECT id, hash FROM public.audit_events ORDER BY id DESC LIMIT 1")
                .fetch_one(&mut *conn)
                .await?;
        let event = audit::PlatformEvent {
            action: "audit.anchored",
            actor_user_id: None,
            company_id: Some(id.0),
            client_addr: None,
            details: json!({ "lastId": head.0, "lastHash": crate::crypto::hex(&head.1) }),
        };
        audit::record(&databases.central, event).await?;
    }
    Ok(Verification {
        clinic_id: id,
        events: report.events,
        broken,
    })
}

/// Every provisioned clinic, oldest first.
pub async fn all_clinics(databases: &Databases) -> Result<Vec<ClinicId>, sqlx::Error> {
    let ids: Vec<uuid::Uuid> = sqlx::query_scalar(
        "SELECT id FROM companies WHERE provisioning_status = 'ready' AND deleted_at IS NULL ORDER BY created_at",
    )
    .fetch_all(&databases.central)
    .await?;
    Ok(ids.into_iter().map(ClinicId).collect())
}
