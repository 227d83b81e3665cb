//! `/auth`: register a clinic, log in, refresh, log out, who am I.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::error::ApiError;
use super::extract::{created, ok, ClientAddr, Json};
use super::metrics::LoginFailure;
use super::state::AppState;
use super::tenant::Caller;
use super::web::session::{self as web_session, ClientMode, RefreshCookie};
use crate::auth::roles::Role;
use crate::auth::session::{SessionError, Sessions, Tokens};
use crate::central::companies::{self, Company};
use crate::central::login_failures::Admission;
use crate::central::registrations;
use crate::central::users::{self, UserRecord};
use crate::config::Registration;
use crate::tenancy::naming::ClinicId;
use crate::tenancy::provisioning::{FirstAdmin, NewClinic, ProvisionError};
use crate::validation::{self as v, FieldErrors};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(refresh, end_web_session))
        .routes(routes!(logout))
        .routes(routes!(me))
}

/// A staff account as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    pub id: Uuid,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub role: Role,
    pub clinic_id: Option<Uuid>,
    pub is_active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<UserRecord> for UserView {
    fn from(user: UserRecord) -> Self {
        UserView {
            id: user.id,
            email: user.email,
            first_name: user.first_name,
            last_name: user.last_name,
            role: user.role,
            clinic_id: user.company_id,
            is_active: user.is_active,
            created_at: user.created_at,
            updated_at: user.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegisterRequest {
    #[schema(schema_with = v::schema::text::<200>, required = true)]
    clinic_name: Option<String>,
    #[schema(schema_with = v::schema::email, required = true)]
    email: Option<String>,
    #[schema(schema_with = v::schema::password, required = true)]
    password: Option<String>,
    #[schema(schema_with = v::schema::text::<100>, required = true)]
    first_name: Option<String>,
    #[schema(schema_with = v::schema::text::<100>, required = true)]
    last_name: Option<String>,
    #[schema(schema_with = v::schema::phone_or_null)]
    phone: Option<String>,
    /// ISO 3166-1 alpha-2, default `FR`.
    #[schema(schema_with = v::schema::country_or_null)]
    country: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegisterResponse {
    clinic: Company,
    user: UserView,
    #[serde(flatten)]
    tokens: Tokens,
}

/// Creates a clinic (its own database and role) and its first admin. Refused
/// when registration is closed; counted against the registration rate
/// limits before anything costly (an attempt the server fails, 5xx, is
/// given back). With `X-MedicalPro-Client: web` the refresh token comes in
/// an `HttpOnly` cookie, not in the body.
#[utoipa::path(post, path = "/auth/register", tag = "auth", request_body = RegisterRequest,
    params(WebClientHeader),
    responses((status = 201, body = RegisterResponse, headers(("Set-Cookie" = String, description = "web mode: the refresh cookie"))),
        (status = 403, description = "registration_closed"), (status = 409, description = "email_taken"),
        (status = 422, description = "validation_failed"), (status = 429, description = "too_many_attempts"),
        (status = 503, description = "server_busy, no_capacity")))]
async fn register(
    State(state): State<AppState>,
    ClientAddr(client_addr): ClientAddr,
    mode: ClientMode,
    body: Result<Json<RegisterRequest>, ApiError>,
) -> Result<impl IntoResponse, ApiError> {
    if state.registration.registration == Registration::Closed {
        return Err(ApiError::RegistrationClosed);
    }
    let Json(body) = body?;
    let checked = checked_registration(body)?;
    let central = &state.databases.central;
    let attempt = match registrations::admit(central, &client_addr, &state.registration).await? {
        Admission::Counted(id) => id,
        Admission::Refused { retry_after } => {
            return Err(ApiError::too_many_attempts(retry_after));
        }
    };
    let registered = provision(&state, checked).await;
    if let Err(error) = &registered {
        if error.status().is_server_error() {
            if let Err(error) = registrations::withdraw(central, attempt).await {
                tracing::warn!(%error, "giving back a failed registration's attempt failed");
            }
        }
    }
    let mut registered = registered?;
    let cookie = mode.hand_over(&mut registered.tokens);
    Ok((cookie, created(registered)))
}

/// A registration whose fields passed their checks; the admin's email is
/// the clinic's.
struct CheckedRegistration {
    clinic: NewClinic,
    password: String,
    first_name: String,
    last_name: String,
}

fn checked_registration(body: RegisterRequest) -> Result<CheckedRegistration, ApiError> {
    let mut errors = FieldErrors::default();
    let e = &mut errors;
    let clinic_name = v::required(body.clinic_name, v::text(200), "clinicName", e);
    let email = v::required(body.email, v::email, "email", e);
    let password = v::required(body.password, v::password, "password", e);
    let first_name = v::required(body.first_name, v::text(100), "firstName", e);
    let last_name = v::required(body.last_name, v::text(100), "lastName", e);
    let phone = v::optional(body.phone, v::phone, "phone", e);
    let country =
        v::optional(body.country, v::country, "country", e).unwrap_or_else(|| "FR".into());
    let (Some(clinic_name), Some(email), Some(password), Some(first_name), Some(last_name)) =
        (clinic_name, email, password, first_name, last_name)
    else {
        return Err(errors.into());
    };
    errors.finish(())?;
    Ok(CheckedRegistration {
        clinic: NewClinic {
            name: clinic_name,
            email,
            phone,
            country,
        },
        password,
        first_name,
        last_name,
    })
}

async fn provision(
    state: &AppState,
    checked: CheckedRegistration,
) -> Result<RegisterResponse, ApiError> {
    let CheckedRegistration {
        clinic,
        password,
        first_name,
        last_name,
    } = checked;
    // Checked before the costly hash; the unique indexes still settle a race.
    if companies::email_taken(&state.databases.central, &clinic.email).await? {
        return Err(email_taken());
    }
    let admin = FirstAdmin {
        email: clinic.email.clone(),
        password_hash: state.hasher.hash(password).await?,
        first_name,
        last_name,
    };
    let provisioned = state
        .provisioner
        .provision(clinic, Some(admin))
        .await
        .map_err(|error| match error {
            ProvisionError::EmailTaken => email_taken(),
            ProvisionError::NoCapacity => {
                tracing::warn!("registration refused: no database server has room");
                ApiError::NoCapacity
            }
            other => ApiError::Internal(other.into()),
        })?;
    state
        .metrics
        .observe_provisioning(std::time::Duration::from_millis(
            provisioned.elapsed_ms as u64,
        ));
    let user = provisioned
        .admin
        .ok_or_else(|| anyhow::anyhow!("provisioning returned no admin"))?;
    let company = companies::find(&state.databases.central, provisioned.clinic_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("provisioned clinic vanished"))?;
    let tokens = sessions(state).open(&user).await?;
    tracing::info!(clinic.id = %provisioned.clinic_id, "clinic registered");
    Ok(RegisterResponse {
        clinic: company,
        user: user.into(),
        tokens,
    })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoginRequest {
    #[schema(schema_with = v::schema::text::<254>, required = true)]
    email: Option<String>,
    #[schema(value_type = String)]
    password: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoginResponse {
    #[serde(flatten)]
    tokens: Tokens,
    user: UserView,
    clinic: Option<Company>,
}

/// Exchanges email and password for tokens. Throttled per account and per
/// client address (`LOGIN_ATTEMPTS_PER_ACCOUNT`, `LOGIN_ATTEMPTS_PER_ADDRESS`
/// in `LOGIN_WINDOW_SECS`): `Retry-After` is the real time, in seconds
/// rounded up, until an attempt is checked again. With
/// `X-MedicalPro-Client: web` the refresh token comes in an `HttpOnly`
/// cookie, not in the body.
#[utoipa::path(post, path = "/auth/login", tag = "auth", request_body = LoginRequest,
    params(WebClientHeader),
    responses((status = 200, body = LoginResponse, headers(("Set-Cookie" = String, description = "web mode: the refresh cookie"))), (status = 401, description = "invalid_credentials"),
        (status = 429, description = "too_many_attempts; `Retry-After`: the seconds (rounded up) until the attempt that reached the limit leaves the window"), (status = 503, description = "server_busy")))]
async fn login(
    State(state): State<AppState>,
    ClientAddr(client_addr): ClientAddr,
    mode: ClientMode,
    Json(body): Json<LoginRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let mut errors = FieldErrors::default();
    let email = v::required(
        body.email,
        |s: String| v::text(254)(s),
        "email",
        &mut errors,
    );
    let password = v::required(body.password, Ok::<String, String>, "password", &mut errors);
    let (Some(email), Some(password)) = (email, password) else {
        return Err(errors.into());
    };
    let (user, mut tokens) = sessions(&state)
        .login(&email, password, &client_addr)
        .await
        .inspect_err(|e| count_login_failure(&state, e))
        .map_err(session_error)?;
    let clinic = match user.company_id {
        Some(id) => companies::find(&state.databases.central, ClinicId(id)).await?,
        None => None,
    };
    let cookie = mode.hand_over(&mut tokens);
    Ok((
        cookie,
        ok(LoginResponse {
            tokens,
            user: user.into(),
            clinic,
        }),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RefreshRequest {
    refresh_token: String,
}

/// `X-MedicalPro-Client: web` asks for the cookie mode (see
/// `http::web::session`).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[expect(dead_code, reason = "describes a header for the OpenAPI document")]
struct WebClientHeader {
    /// `web`: the refresh token travels in an `HttpOnly` cookie, never in
    /// a body.
    #[param(rename = "X-MedicalPro-Client", value_type = Option<String>)]
    client: Option<String>,
}

/// Rotates a refresh token: the old one stops working. With
/// `X-MedicalPro-Client: web` the token is the refresh cookie (the body is
/// ignored), the request must carry `X-MedicalPro-CSRF: 1` and come from
/// this site (403 otherwise), and the new token replaces the cookie.
#[utoipa::path(post, path = "/auth/refresh", tag = "auth", request_body = RefreshRequest,
    params(WebClientHeader),
    responses((status = 200, body = Tokens, headers(("Set-Cookie" = String, description = "web mode: the new refresh cookie"))),
        (status = 401, description = "unauthorized"),
        (status = 403, description = "forbidden: a web-mode request without the CSRF header or from another site")))]
async fn refresh(
    State(state): State<AppState>,
    mode: ClientMode,
    headers: HeaderMap,
    body: Result<Json<RefreshRequest>, ApiError>,
) -> Result<Response, ApiError> {
    let presented = match mode {
        ClientMode::Api => body?.0.refresh_token,
        ClientMode::Web => match web_session::same_site_cookie(&headers)? {
            Some(token) => token,
            None => return Err(ApiError::Unauthorized),
        },
    };
    match sessions(&state).refresh(&presented).await {
        Ok(mut tokens) => {
            let cookie = mode.hand_over(&mut tokens);
            Ok((cookie, ok(tokens)).into_response())
        }
        // A refused cookie is cleared, so the page asks for a password.
        Err(error) if mode == ClientMode::Web => {
            Ok((RefreshCookie::Clear, session_error(error)).into_response())
        }
        Err(error) => Err(session_error(error)),
    }
}

/// Ends a browser session: revokes the refresh cookie's family and clears
/// the cookie (the web client's logout). Requires `X-MedicalPro-CSRF: 1`
/// from this site's own pages; without a cookie there is nothing to end.
#[utoipa::path(delete, path = "/auth/refresh", tag = "auth",
    responses((status = 204, headers(("Set-Cookie" = String, description = "clears the refresh cookie"))),
        (status = 403, description = "forbidden: without the CSRF header or from another site")))]
async fn end_web_session(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    if let Some(token) = web_session::same_site_cookie(&headers)? {
        sessions(&state).logout(&token).await?;
    }
    Ok((RefreshCookie::Clear, StatusCode::NO_CONTENT))
}

/// Revokes a refresh token and its family.
#[utoipa::path(post, path = "/auth/logout", tag = "auth", request_body = RefreshRequest,
    responses((status = 204)))]
async fn logout(
    State(state): State<AppState>,
    Json(body): Json<RefreshRequest>,
) -> Result<StatusCode, ApiError> {
    sessions(&state).logout(&body.refresh_token).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, ToSchema)]
pub struct MeResponse {
    user: UserView,
    clinic: Option<Company>,
}

/// The caller's account and clinic.
#[utoipa::path(get, path = "/auth/me", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = MeResponse), (status = 401, description = "unauthorized")))]
async fn me(State(state): State<AppState>, caller: Caller) -> Result<impl IntoResponse, ApiError> {
    let central = &state.databases.central;
    let user = users::find(central, caller.user_id)
        .await?
        .filter(|u| u.is_active)
        .ok_or(ApiError::Unauthorized)?;
    let clinic = match caller.clinic_id {
        Some(id) => Some(
            companies::find(central, id)
                .await?
                .ok_or(ApiError::ClinicInactive)?,
        ),
        None => None,
    };
    Ok(ok(MeResponse {
        user: user.into(),
        clinic,
    }))
}

pub(super) fn sessions(state: &AppState) -> Sessions<'_> {
    Sessions {
        databases: &state.databases,
        keys: &state.keys,
        states: &state.states,
        refresh_family_max_days: state.refresh_family_max_days,
        hasher: &state.hasher,
        login_limits: &state.login_limits,
    }
}

fn email_taken() -> ApiError {
    ApiError::Conflict {
        code: "email_taken",
        message: "an account with this email already exists".into(),
    }
}

fn count_login_failure(state: &AppState, error: &SessionError) {
    let reason = match error {
        SessionError::InvalidCredentials => LoginFailure::InvalidCredentials,
        SessionError::Throttled { .. } => LoginFailure::Throttled,
        _ => return,
    };
    state.metrics.login_failed(reason);
}

fn session_error(error: SessionError) -> ApiError {
    match error {
        SessionError::Throttled { retry_after } => ApiError::too_many_attempts(retry_after),
        SessionError::Busy => ApiError::ServerBusy,
        SessionError::InvalidCredentials => ApiError::InvalidCredentials,
        SessionError::InvalidToken => ApiError::Unauthorized,
        SessionError::ClinicInactive => ApiError::ClinicInactive,
        SessionError::Database(e) => e.into(),
    }
}
