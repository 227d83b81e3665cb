//! The patient's GDPR rights: `GET /patients/{id}/export` and
//! `POST /patients/{id}/erase`. Both reach medical records, so both take the
//! medical-records rights of the role table (admin and doctor). Both work on
//! soft-deleted patients too: their data is still held until erased.

use axum::extract::State;
use axum::response::IntoResponse;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::error::ApiError;
use super::extract::{ok, Path};
use super::state::AppState;
use super::tenant::{Clinic, MedicalRecords};
use crate::central::erasures;
use crate::clinic::audit::{Action, Entry};
use crate::clinic::gdpr::{self, Erased};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(export_patient))
        .routes(routes!(erase_patient))
}

/// Everything held about one patient, as one JSON document (GDPR articles
/// 15 and 20). The export is itself recorded in the audit trail.
#[utoipa::path(get, path = "/patients/{id}/export", tag = "gdpr", security(("bearer" = [])),
    params(("id" = Uuid, Path)), responses((status = 200, description = "the patient's data", body = Object),
        (status = 404, description = "not_found")))]
async fn export_patient(
    clinic: Clinic<MedicalRecords>,
    Path(id): Path<Uuid>,
) -> Result<impl IntoResponse, ApiError> {
    let mut tx = clinic.begin_write().await?;
    if !gdpr::lock_patient(&mut tx, id).await? {
        return Err(ApiError::NotFound);
    }
    let held = gdpr::export(&mut tx, id).await?;
    tx.commit(
        Entry::new(Action::Export, "patient")
            .resource(id)
            .patient(id),
    )
    .await?;
    Ok(ok(held))
}

/// Erases the patient's identifying data and everything attached (GDPR
/// article 17), unless the law still obliges the clinic to keep some of it:
/// then 409 `retention_applies` lists each retained item and until when.
/// The erasure is recorded in central's erasure ledger (no personal data),
/// which a restore of an older backup re-applies.
#[utoipa::path(post, path = "/patients/{id}/erase", tag = "gdpr", security(("bearer" = [])),
    params(("id" = Uuid, Path)), responses((status = 200, body = Erased),
        (status = 404, description = "not_found"), (status = 409, description = "retention_applies")))]
async fn erase_patient(
    State(state): State<AppState>,
    clinic: Clinic<MedicalRecords>,
    Path(id): Path<Uuid>,
) -> Result<impl IntoResponse, ApiError> {
    let mut tx = clinic.begin_write().await?;
    if !gdpr::lock_patient(&mut tx, id).await? {
        return Err(ApiError::NotFound);
    }
    let today = chrono::Utc::now().date_naive();
    let holds = gdpr::retention_holds(&mut tx, id, today).await?;
    if !holds.is_empty() {
        return Err(ApiError::RetentionApplies(holds));
    }
    let erased = gdpr::erase(&mut tx, id).await?;
    let entry = Entry::new(Action::Erase, "patient")
        .resource(id)
        .patient(id)
        .details(json!(erased));
    // In the ledger before the commit: an erasure that commits is always in
    // it, so no restore brings the patient back.
    let central = &state.databases.central;
    erasures::record(central, &state.master_keys, clinic.id, id).await?;
    if let Err(error) = tx.commit(entry).await {
        if let Err(error) = erasures::unrecord(central, &state.master_keys, clinic.id, id).await {
            tracing::error!(%error, "an erasure that did not commit stays in the ledger");
        }
        return Err(error);
    }
    Ok(ok(erased))
}
