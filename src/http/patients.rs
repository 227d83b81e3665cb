//! `/patients`: list, create, read, update, soft delete, in the caller's
//! clinic database.

use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::error::{ApiError, Found, ResultExt};
use super::extract::{created, ok, page, Json, Path, Query};
use super::list::ListQuery;
use super::state::AppState;
use super::tenant::{Clinic, Patients};
use crate::clinic::audit::{Action, Entry};
use crate::clinic::patients::{self, NewPatient, Patient, PatientFields, PatientInput};
use crate::clinic::settings;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_patients, create_patient))
        .routes(routes!(get_patient, update_patient, delete_patient))
}

/// The audit trail's name for this resource.
const RESOURCE: &str = "patient";

/// The unique index on live patients' national ids. Duplicates are found
/// without meeting it (see `patients::insert`); only two concurrent writes
/// of one national id still can.
const NATIONAL_ID_TAKEN: &str = "patients_national_id_key";

fn national_id_taken() -> ApiError {
    ApiError::conflict("another patient of this clinic has this national id")
}

/// Live patients, by name; `?search=` matches names, email and phone.
#[utoipa::path(get, path = "/patients", tag = "patients", security(("bearer" = [])),
    params(ListQuery), responses((status = 200, body = [Patient]),
        (status = 422, description = "validation_failed (search longer than 100 characters)")))]
async fn list_patients(
    clinic: Clinic<Patients>,
    Query(query): Query<ListQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let page_request = query.page()?;
    let mut tx = clinic.begin_read().await?;
    let (rows, total) = patients::list(&mut tx, query.search(), page_request).await?;
    let entry = Entry::new(Action::List, RESOURCE).details(json!({
        "limit": page_request.limit, "offset": page_request.offset, "search": query.search().is_some(),
    }));
    tx.commit().await?;
    clinic.record_read(entry).await?;
    Ok(page(rows, page_request.with_total(total)))
}

/// Creates a patient (the national id, when given, is checked and unique in the clinic).
#[utoipa::path(post, path = "/patients", tag = "patients", security(("bearer" = [])),
    request_body = NewPatient, responses((status = 201, body = Patient),
        (status = 422, description = "validation_failed"), (status = 409, description = "conflict")))]
async fn create_patient(
    clinic: Clinic<Patients>,
    Json(input): Json<PatientInput>,
) -> Result<impl IntoResponse, ApiError> {
    let mut tx = clinic.begin_write().await?;
    let country = settings::country(&mut tx).await?;
    let changed = input.present_fields();
    let fields = input.apply(PatientFields::default(), &country)?;
    let patient = patients::insert(&mut tx, &fields)
        .await
        .on_constraint(NATIONAL_ID_TAKEN, national_id_taken)?
        .ok_or_else(national_id_taken)?;
    let entry = Entry::new(Action::Create, RESOURCE)
        .resource(patient.id)
        .patient(patient.id)
        .fields(changed);
    tx.commit(entry).await?;
    Ok(created(patient))
}

/// One patient.
#[utoipa::path(get, path = "/patients/{id}", tag = "patients", security(("bearer" = [])),
    params(("id" = Uuid, Path)), responses((status = 200, body = Patient), (status = 404, description = "not_found")))]
async fn get_patient(
    clinic: Clinic<Patients>,
    Path(id): Path<Uuid>,
) -> Result<impl IntoResponse, ApiError> {
    let entry = Entry::new(Action::Read, RESOURCE).resource(id).patient(id);
    let patient = clinic
        .read_alone(entry, |conn| Box::pin(patients::find(conn, id)))
        .await
        .found()?;
    Ok(ok(patient))
}

/// Updates the given fields (PUT and PATCH alike); `null` clears an optional one.
#[utoipa::path(method(put, patch), path = "/patients/{id}", tag = "patients", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = PatientInput,
    responses((status = 200, body = Patient), (status = 404, description = "not_found"),
        (status = 422, description = "validation_failed")))]
async fn update_patient(
    clinic: Clinic<Patients>,
    Path(id): Path<Uuid>,
    Json(input): Json<PatientInput>,
) -> Result<impl IntoResponse, ApiError> {
    let mut tx = clinic.begin_write().await?;
    let current = patients::find_for_update(&mut tx, id).await.found()?;
    let country = settings::country(&mut tx).await?;
    let changed = input.present_fields();
    let fields = input.apply(current.fields, &country)?;
    let patient = patients::update(&mut tx, id, &fields)
        .await
        .on_constraint(NATIONAL_ID_TAKEN, national_id_taken)?
        .ok_or_else(national_id_taken)?;
    let entry = Entry::new(Action::Update, RESOURCE)
        .resource(id)
        .patient(id)
        .fields(changed);
    tx.commit(entry).await?;
    Ok(ok(patient))
}

/// Soft-deletes a patient: hidden from lists, data kept until erased (see `/patients/{id}/erase`).
#[utoipa::path(delete, path = "/patients/{id}", tag = "patients", security(("bearer" = [])),
    params(("id" = Uuid, Path)), responses((status = 204), (status = 404, description = "not_found")))]
async fn delete_patient(
    clinic: Clinic<Patients>,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    let mut tx = clinic.begin_write().await?;
    if !patients::soft_delete(&mut tx, id).await? {
        return Err(ApiError::NotFound);
    }
    tx.commit(
        Entry::new(Action::Delete, RESOURCE)
            .resource(id)
            .patient(id),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
