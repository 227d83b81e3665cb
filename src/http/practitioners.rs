//! `/practitioners`: list, create, read, update, soft delete, in the
//! caller's clinic database. A `userId` must name a live (not deleted,
//! possibly inactive) staff account of the caller's clinic, else 422; one
//! practitioner per account, else 409. Not patient data: not in the
//! clinic's audit trail.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::error::{ApiError, Found, ResultExt};
use super::extract::{created, ok, page, Json, Path, Query};
use super::list::ListQuery;
use super::state::AppState;
use super::tenant::{Clinic, Practitioners};
use crate::central::users;
use crate::clinic::practitioners::{
    self, NewPractitioner, Practitioner, PractitionerFields, PractitionerInput, USER_TAKEN,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_practitioners, create_practitioner))
        .routes(routes!(
            get_practitioner,
            update_practitioner,
            delete_practitioner
        ))
}

fn user_taken() -> ApiError {
    ApiError::conflict("this staff account is already linked to another practitioner")
}

/// Live practitioners, by name; `?search=` matches names and specialty.
#[utoipa::path(get, path = "/practitioners", tag = "practitioners", security(("bearer" = [])),
    params(ListQuery), responses((status = 200, body = [Practitioner]),
        (status = 422, description = "validation_failed (search longer than 100 characters)")))]
async fn list_practitioners(
    clinic: Clinic<Practitioners>,
    Query(query): Query<ListQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let page_request = query.page()?;
    let mut tx = clinic.begin().await?;
    let (rows, total) = practitioners::list(&mut tx, query.search(), page_request).await?;
    tx.commit().await?;
    Ok(page(rows, page_request.with_total(total)))
}

/// Creates a practitioner.
#[utoipa::path(post, path = "/practitioners", tag = "practitioners", security(("bearer" = [])),
    request_body = NewPractitioner, responses((status = 201, body = Practitioner),
        (status = 409, description = "conflict: account already linked"),
        (status = 422, description = "validation_failed")))]
async fn create_practitioner(
    clinic: Clinic<Practitioners>,
    State(state): State<AppState>,
    Json(input): Json<PractitionerInput>,
) -> Result<impl IntoResponse, ApiError> {
    let fields = checked(&clinic, &state, input, PractitionerFields::default()).await?;
    let mut tx = clinic.begin().await?;
    let practitioner = practitioners::insert(&mut tx, &fields)
        .await
        .on_constraint(USER_TAKEN, user_taken)?;
    tx.commit().await?;
    Ok(created(practitioner))
}

/// One practitioner.
#[utoipa::path(get, path = "/practitioners/{id}", tag = "practitioners", security(("bearer" = [])),
    params(("id" = Uuid, Path)), responses((status = 200, body = Practitioner), (status = 404, description = "not_found")))]
async fn get_practitioner(
    clinic: Clinic<Practitioners>,
    Path(id): Path<Uuid>,
) -> Result<impl IntoResponse, ApiError> {
    let mut tx = clinic.begin().await?;
    let practitioner = practitioners::find(&mut tx, id).await.found()?;
    tx.commit().await?;
    Ok(ok(practitioner))
}

/// Updates the given fields (PUT and PATCH alike); `null` clears an optional one.
#[utoipa::path(method(put, patch), path = "/practitioners/{id}", tag = "practitioners", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = PractitionerInput,
    responses((status = 200, body = Practitioner), (status = 404, description = "not_found"),
        (status = 409, description = "conflict: account already linked"),
        (status = 422, description = "validation_failed")))]
async fn update_practitioner(
    clinic: Clinic<Practitioners>,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Json(input): Json<PractitionerInput>,
) -> Result<impl IntoResponse, ApiError> {
    let mut tx = clinic.begin().await?;
    let current = practitioners::find_for_update(&mut tx, id).await.found()?;
    let fields = checked(&clinic, &state, input, current.fields).await?;
    let practitioner = practitioners::update(&mut tx, id, &fields)
        .await
        .on_constraint(USER_TAKEN, user_taken)?;
    tx.commit().await?;
    Ok(ok(practitioner))
}

/// Soft-deletes a practitioner: hidden from lists, past appointments kept.
#[utoipa::path(delete, path = "/practitioners/{id}", tag = "practitioners", security(("bearer" = [])),
    params(("id" = Uuid, Path)), responses((status = 204), (status = 404, description = "not_found")))]
async fn delete_practitioner(
    clinic: Clinic<Practitioners>,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    let mut tx = clinic.begin().await?;
    if !practitioners::soft_delete(&mut tx, id).await? {
        return Err(ApiError::NotFound);
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Applies `input` onto `current`, and checks in the central database that
/// a newly given `userId` is a live account of the caller's clinic; every
/// problem is reported together.
async fn checked(
    clinic: &Clinic<Practitioners>,
    state: &AppState,
    input: PractitionerInput,
    current: PractitionerFields,
) -> Result<PractitionerFields, ApiError> {
    let unknown_user = match input.linked_user() {
        Some(user_id) => users::find_in_clinic(&state.databases.central, clinic.id.0, user_id)
            .await?
            .is_none(),
        None => false,
    };
    let message = "must be a staff account of this clinic";
    match (input.apply(current), unknown_user) {
        (Ok(fields), false) => Ok(fields),
        (Ok(_), true) => Err(crate::validation::FieldErrors::single("userId", message).into()),
        (Err(mut errors), true) => {
            errors.add("userId", message);
            Err(errors.into())
        }
        (Err(errors), false) => Err(errors.into()),
    }
}
