//! Re-applies the erasure ledger to a restored database before it serves:
//! a patient erased after the backup was made is erased again, with the
//! same statements as `POST /patients/{id}/erase` and an audit event saying
//! why (no actor: the restore did it).

use serde_json::json;
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use super::Fleet;
use crate::central::erasures;
use crate::clinic::gdpr;
use crate::tenancy::naming::ClinicId;

/// Erases, in `restored` (a connection as the clinic's owner), every patient
/// not yet erased there whom `clinic`'s ledger holds; returns how many.
pub async fn reapply(
    fleet: &Fleet,
    clinic: ClinicId,
    restored: &mut PgConnection,
) -> anyhow::Result<usize> {
    let ledger = erasures::ledger(&fleet.databases.central, &fleet.settings.keys, clinic).await?;
    let Some(ledger) = ledger.filter(|ledger| !ledger.is_empty()) else {
        return Ok(0);
    };
    let patients: Vec<Uuid> =
        sqlx::query_scalar("SELECT id FROM public.patients WHERE erased_at IS NULL")
            .fetch_all(&mut *restored)
            .await?;
    let erased: Vec<Uuid> = patients
        .into_iter()
        .filter(|patient| ledger.holds(*patient))
        .collect();
    for patient in &erased {
        let mut tx = restored.begin().await?;
        let removed = gdpr::erase(&mut tx, *patient).await?;
        sqlx::query(
            "SELECT public.audit_events_append(NULL, NULL, 'erase', 'patient', $1, $1, NULL, NULL,
                    NULL, $2)",
        )
        .bind(patient)
        .bind(json!({"reappliedAfterRestore": true, "removed": removed}))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
    }
    if !erased.is_empty() {
        tracing::info!(clinic.id = %clinic, erased = erased.len(), "erasures re-applied to the restored database");
    }
    Ok(erased.len())
}
