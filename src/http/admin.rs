//! `/admin`: the platform's clinics, for `super_admin` accounts only.

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::response::IntoResponse;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::clinic::Caller;
use super::error::ApiError;
use super::extract::{ok, page, Path, Query};
use super::list::ListQuery;
use super::state::AppState;
use crate::auth::roles::Role;
use crate::platform::{self, ChangedBy, ClinicDetails, ClinicSummary};
use crate::tenancy::naming::ClinicId;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_clinics))
        .routes(routes!(show_clinic))
        .routes(routes!(suspend_clinic))
        .routes(routes!(activate_clinic))
}

/// A verified `super_admin` (whose account `Caller` has found still active).
pub struct SuperAdmin(pub Caller);

impl FromRequestParts<AppState> for SuperAdmin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        if caller.role != Role::SuperAdmin {
            return Err(ApiError::Forbidden);
        }
        Ok(SuperAdmin(caller))
    }
}

/// Every clinic: status, placement, schema version, size. No patient data.
#[utoipa::path(get, path = "/admin/clinics", tag = "admin", security(("bearer" = [])),
    params(ListQuery), responses((status = 200, body = [ClinicSummary]), (status = 403, description = "forbidden")))]
async fn list_clinics(
    State(state): State<AppState>,
    _admin: SuperAdmin,
    Query(query): Query<ListQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let page_request = query.page()?;
    let (clinics, total) = platform::list_clinics(
        &state.databases.central,
        Some(page_request.limit),
        page_request.offset,
    )
    .await?;
    Ok(page(clinics, page_request.with_total(total)))
}

#[utoipa::path(get, path = "/admin/clinics/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = Uuid, Path)), responses((status = 200, body = ClinicDetails), (status = 404, description = "not_found")))]
async fn show_clinic(
    State(state): State<AppState>,
    _admin: SuperAdmin,
    Path(id): Path<Uuid>,
) -> Result<impl IntoResponse, ApiError> {
    details(&state, ClinicId(id)).await.map(ok)
}

/// Suspends a clinic: its tokens get 403 `clinic_inactive` from the next request.
#[utoipa::path(post, path = "/admin/clinics/{id}/suspend", tag = "admin", security(("bearer" = [])),
    params(("id" = Uuid, Path)), responses((status = 200, body = ClinicDetails), (status = 404, description = "not_found")))]
async fn suspend_clinic(
    State(state): State<AppState>,
    SuperAdmin(admin): SuperAdmin,
    Path(id): Path<Uuid>,
) -> Result<impl IntoResponse, ApiError> {
    set_active(&state, &admin, ClinicId(id), false)
        .await
        .map(ok)
}

#[utoipa::path(post, path = "/admin/clinics/{id}/activate", tag = "admin", security(("bearer" = [])),
    params(("id" = Uuid, Path)), responses((status = 200, body = ClinicDetails), (status = 404, description = "not_found")))]
async fn activate_clinic(
    State(state): State<AppState>,
    SuperAdmin(admin): SuperAdmin,
    Path(id): Path<Uuid>,
) -> Result<impl IntoResponse, ApiError> {
    set_active(&state, &admin, ClinicId(id), true).await.map(ok)
}

async fn set_active(
    state: &AppState,
    admin: &Caller,
    id: ClinicId,
    active: bool,
) -> Result<ClinicDetails, ApiError> {
    let central = &state.databases.central;
    if !platform::set_clinic_active(central, id, active, ChangedBy::Admin(admin.user_id)).await? {
        return Err(ApiError::NotFound);
    }
    state.states.forget(id);
    if !active {
        state.pools.close(id).await;
    }
    details(state, id).await
}

async fn details(state: &AppState, id: ClinicId) -> Result<ClinicDetails, ApiError> {
    platform::show_clinic(&state.databases.central, id)
        .await?
        .ok_or(ApiError::NotFound)
}
