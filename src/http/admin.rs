//! `/admin`: the platform's clinics, staff accounts and audit log, for
//! `super_admin` accounts only (anyone else gets 403). Every change is
//! recorded in the platform audit log.

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::error::ApiError;
use super::extract::{ok, page, Json, Path, Query};
use super::list::{ListQuery, MAX_SEARCH_CHARS};
use super::state::AppState;
use super::tenant::Caller;
use crate::auth::roles::Role;
use crate::central::audit::{self, EventFilter, RecordedEvent};
use crate::platform::{
    self, ChangedBy, ClinicChange, ClinicDetails, ClinicSummary, PlatformError, StaffAccount,
};
use crate::tenancy::naming::ClinicId;
use crate::validation::{self as v, FieldErrors};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_clinics))
        .routes(routes!(show_clinic, update_clinic))
        .routes(routes!(suspend_clinic))
        .routes(routes!(activate_clinic))
        .routes(routes!(list_staff))
        .routes(routes!(list_platform_audit))
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

/// Every clinic: email, status, placement, schema version, size; `search`
/// matches the name or the email. No patient data.
#[utoipa::path(get, path = "/admin/clinics", tag = "admin", security(("bearer" = [])),
    params(ListQuery), responses((status = 200, body = [ClinicSummary]), (status = 400, description = "bad_request"),
        (status = 401, description = "unauthorized"), (status = 403, description = "forbidden"),
        (status = 422, description = "validation_failed")))]
async fn list_clinics(
    State(state): State<AppState>,
    _admin: SuperAdmin,
    Query(query): Query<ListQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let page_request = query.page()?;
    let (clinics, total) = platform::list_clinics(
        &state.databases.central,
        query.search(),
        Some(page_request.limit),
        page_request.offset,
    )
    .await?;
    Ok(page(clinics, page_request.with_total(total)))
}

/// One clinic in detail: its central record, placement and staff count.
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

/// Reactivates a suspended clinic: its staff are served again from the next request.
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

/// A clinic's new name and email; absent fields are kept.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClinicPatch {
    #[schema(schema_with = v::schema::text::<200>)]
    name: Option<String>,
    #[schema(schema_with = v::schema::email)]
    email: Option<String>,
}

/// Renames a clinic and/or changes its email (checked as at registration;
/// an email another clinic or account uses is 409 `email_taken`).
#[utoipa::path(patch, path = "/admin/clinics/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = ClinicPatch,
    responses((status = 200, body = ClinicDetails), (status = 400, description = "bad_request"),
        (status = 401, description = "unauthorized"), (status = 403, description = "forbidden"),
        (status = 404, description = "not_found"), (status = 409, description = "email_taken"),
        (status = 415, description = "unsupported_media_type"), (status = 422, description = "validation_failed")))]
async fn update_clinic(
    State(state): State<AppState>,
    SuperAdmin(admin): SuperAdmin,
    Path(id): Path<Uuid>,
    body: Result<Json<ClinicPatch>, ApiError>,
) -> Result<impl IntoResponse, ApiError> {
    let Json(body) = body?;
    let change = ClinicChange::parse(body.name, body.email)?;
    let central = &state.databases.central;
    match platform::update_clinic(
        central,
        ClinicId(id),
        &change,
        ChangedBy::Admin(admin.user_id),
    )
    .await
    {
        Ok(Some(details)) => Ok(ok(details)),
        Ok(None) => Err(ApiError::NotFound),
        Err(PlatformError::EmailTaken) => Err(ApiError::Conflict {
            code: "email_taken",
            message: "a clinic or account with this email already exists".into(),
        }),
        Err(error) => Err(ApiError::Internal(error.into())),
    }
}

/// Staff accounts of every clinic (and the platform's own): who, which
/// clinic, role, active, last login. No patient data.
#[utoipa::path(get, path = "/admin/users", tag = "admin", security(("bearer" = [])),
    params(ListQuery),
    responses((status = 200, body = [StaffAccount]), (status = 400, description = "bad_request"),
        (status = 401, description = "unauthorized"), (status = 403, description = "forbidden"),
        (status = 422, description = "validation_failed")))]
async fn list_staff(
    State(state): State<AppState>,
    _admin: SuperAdmin,
    Query(query): Query<ListQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let page_request = query.page()?;
    let (staff, total) =
        platform::list_staff(&state.databases.central, query.search(), page_request).await?;
    Ok(page(staff, page_request.with_total(total)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PlatformAuditQuery {
    /// One action, such as `clinic.updated` (at most 100 characters).
    #[param(max_length = 100)]
    pub action: Option<String>,
    /// Events about this clinic.
    pub clinic_id: Option<Uuid>,
    /// Events at or after this date (`YYYY-MM-DD`, from its start, UTC) or
    /// instant (RFC 3339).
    pub from: Option<String>,
    /// Events before this instant (RFC 3339), or up to the end of this date
    /// (`YYYY-MM-DD`, UTC).
    pub to: Option<String>,
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    #[param(minimum = 0, maximum = 100_000)]
    pub offset: Option<i64>,
}

/// The platform audit log, newest first: logins, registrations,
/// provisioning, staff and clinic changes, suspensions, audit anchors and
/// restores. No patient data.
#[utoipa::path(get, path = "/admin/audit", tag = "admin", security(("bearer" = [])),
    params(PlatformAuditQuery),
    responses((status = 200, body = [RecordedEvent]), (status = 400, description = "bad_request"),
        (status = 401, description = "unauthorized"), (status = 403, description = "forbidden"),
        (status = 422, description = "validation_failed")))]
async fn list_platform_audit(
    State(state): State<AppState>,
    _admin: SuperAdmin,
    Query(query): Query<PlatformAuditQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let page_request = ListQuery {
        limit: query.limit,
        offset: query.offset,
        search: None,
    }
    .page()?;
    if query
        .action
        .as_deref()
        .is_some_and(|action| action.chars().count() > MAX_SEARCH_CHARS)
    {
        return Err(FieldErrors::single(
            "action",
            format!("must be at most {MAX_SEARCH_CHARS} characters"),
        )
        .into());
    }
    let filter = EventFilter {
        action: query.action,
        clinic_id: query.clinic_id,
        from: query.from.map(|t| instant(&t, "from", false)).transpose()?,
        to: query.to.map(|t| instant(&t, "to", true)).transpose()?,
    };
    let (events, total) = audit::list(&state.databases.central, &filter, page_request).await?;
    Ok(page(events, page_request.with_total(total)))
}

/// An RFC 3339 instant, or a date (`YYYY-MM-DD`, UTC): its start, or with
/// `end_of_day` the next day's start. Anything else is a 400 naming `field`.
fn instant(text: &str, field: &str, end_of_day: bool) -> Result<DateTime<Utc>, ApiError> {
    if let Ok(instant) = v::timestamp(text.to_owned()) {
        return Ok(instant);
    }
    let day = v::date(text.to_owned()).map_err(|_| {
        ApiError::BadRequest(format!(
            "{field} must be a date (YYYY-MM-DD) or an RFC 3339 timestamp"
        ))
    })?;
    let day = if end_of_day {
        day.succ_opt()
    } else {
        Some(day)
    };
    day.and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| ApiError::BadRequest(format!("{field} is out of range")))
}
