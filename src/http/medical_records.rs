//! `/medical-records`, for admins and doctors only (the role table, through
//! `Clinic<MedicalRecords>`). Every access is audited with the names of the
//! fields changed, never their content.

use axum::http::StatusCode;
use axum::response::IntoResponse;
use chrono::Utc;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::error::{ApiError, Found, ResultExt};
use super::extract::{created, ok, page, Json, Path, Query};
use super::patient_data::{unknown, PatientQuery};
use super::state::AppState;
use super::tenant::{Clinic, MedicalRecords};
use crate::clinic::audit::{Action, Entry};
use crate::clinic::medical_records::{
    self as records, MedicalRecord, MedicalRecordFields, MedicalRecordInput, NewMedicalRecord,
};
use crate::clinic::references;
use crate::validation::FieldErrors;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_records, create_record))
        .routes(routes!(get_record, update_record, delete_record))
}

const RESOURCE: &str = "medical_record";

/// Live records, newest first; `?patientId=` keeps one patient's.
#[utoipa::path(get, path = "/medical-records", tag = "medical records", security(("bearer" = [])),
    params(PatientQuery), responses((status = 200, body = [MedicalRecord]),
        (status = 403, description = "forbidden")))]
async fn list_records(
    clinic: Clinic<MedicalRecords>,
    Query(query): Query<PatientQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let page_request = query.page()?;
    let mut tx = clinic.begin_read().await?;
    let (rows, total) = records::list(&mut tx, query.patient_id, page_request).await?;
    let entry = query.audit_entry(RESOURCE, page_request);
    tx.commit().await?;
    clinic.record_read(entry).await?;
    Ok(page(rows, page_request.with_total(total)))
}

/// Writes a medical record for a patient (doctor and admin only).
#[utoipa::path(post, path = "/medical-records", tag = "medical records", security(("bearer" = [])),
    request_body = NewMedicalRecord, responses((status = 201, body = MedicalRecord),
        (status = 403, description = "forbidden"), (status = 422, description = "validation_failed")))]
async fn create_record(
    clinic: Clinic<MedicalRecords>,
    Json(input): Json<MedicalRecordInput>,
) -> Result<impl IntoResponse, ApiError> {
    let changed = input.present_fields();
    let fields = input.apply(None, Utc::now())?;
    let mut tx = clinic.begin_write().await?;
    check_references(&mut tx, None, &fields).await?;
    let record = records::insert(&mut tx, &fields)
        .await
        .on_constraint(records::PATIENT_FK, unknown("patientId"))
        .on_constraint(records::PRACTITIONER_FK, unknown("practitionerId"))?;
    let entry = Entry::new(Action::Create, RESOURCE)
        .resource(record.id)
        .patient(fields.patient_id)
        .fields(changed);
    tx.commit(entry).await?;
    Ok(created(record))
}

/// The patient and, when newly given, the practitioner must be live rows
/// of this clinic (a practitioner who no longer practises may still be
/// named: records describe the past).
async fn check_references(
    tx: &mut sqlx::PgConnection,
    current: Option<&MedicalRecordFields>,
    next: &MedicalRecordFields,
) -> Result<(), ApiError> {
    let mut errors = FieldErrors::default();
    if current.is_none() {
        references::check_patient(tx, next.patient_id, "patientId", &mut errors).await?;
    }
    if let Some(practitioner) = next.practitioner_id {
        if current.and_then(|c| c.practitioner_id) != Some(practitioner) {
            references::check_practitioner(tx, practitioner, "practitionerId", false, &mut errors)
                .await?;
        }
    }
    Ok(errors.finish(())?)
}

/// One medical record (doctor and admin only).
#[utoipa::path(get, path = "/medical-records/{id}", tag = "medical records",
    security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = MedicalRecord), (status = 404, description = "not_found")))]
async fn get_record(
    clinic: Clinic<MedicalRecords>,
    Path(id): Path<Uuid>,
) -> Result<impl IntoResponse, ApiError> {
    let mut tx = clinic.begin_read().await?;
    let record = records::find(&mut tx, id).await.found()?;
    let entry = Entry::new(Action::Read, RESOURCE)
        .resource(id)
        .patient(record.fields.patient_id);
    tx.commit().await?;
    clinic.record_read(entry).await?;
    Ok(ok(record))
}

/// Updates the given fields; `null` clears an optional one. The patient
/// cannot change.
#[utoipa::path(method(put, patch), path = "/medical-records/{id}", tag = "medical records",
    security(("bearer" = [])), params(("id" = Uuid, Path)), request_body = MedicalRecordInput,
    responses((status = 200, body = MedicalRecord), (status = 404, description = "not_found"),
        (status = 422, description = "validation_failed")))]
async fn update_record(
    clinic: Clinic<MedicalRecords>,
    Path(id): Path<Uuid>,
    Json(input): Json<MedicalRecordInput>,
) -> Result<impl IntoResponse, ApiError> {
    let mut tx = clinic.begin_write().await?;
    let current = records::find_for_update(&mut tx, id).await.found()?;
    let changed = input.present_fields();
    let fields = input.apply(Some(&current.fields), Utc::now())?;
    check_references(&mut tx, Some(&current.fields), &fields).await?;
    let record = records::update(&mut tx, id, &fields)
        .await
        .on_constraint(records::PRACTITIONER_FK, unknown("practitionerId"))?;
    let entry = Entry::new(Action::Update, RESOURCE)
        .resource(id)
        .patient(fields.patient_id)
        .fields(changed);
    tx.commit(entry).await?;
    Ok(ok(record))
}

/// Soft-deletes a record: it leaves every list and read, and stays stored
/// for the legal retention period.
#[utoipa::path(delete, path = "/medical-records/{id}", tag = "medical records",
    security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404, description = "not_found")))]
async fn delete_record(
    clinic: Clinic<MedicalRecords>,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    let mut tx = clinic.begin_write().await?;
    let patient = records::soft_delete(&mut tx, id).await.found()?;
    let entry = Entry::new(Action::Delete, RESOURCE)
        .resource(id)
        .patient(patient);
    tx.commit(entry).await?;
    Ok(StatusCode::NO_CONTENT)
}
