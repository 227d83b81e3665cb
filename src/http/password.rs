//! `/auth/password`: a logged-in user changes their password;
//! `/auth/password/reset`: anyone holding a one-time link (setup or reset,
//! handed out by `medicalpro user reset-password`, `user create` or
//! `clinic create --admin-email`) sets the password of the link's account.
//! See `auth::credentials`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::sessions;
use super::error::ApiError;
use super::extract::{ok, ClientAddr, Json};
use super::metrics::LoginFailure;
use super::state::AppState;
use super::tenant::Caller;
use crate::auth::credentials::{self, CredentialError};
use crate::auth::session::Tokens;
use crate::central::companies::ClinicState;
use crate::central::users;
use crate::validation::{self as v, FieldErrors};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(change_password))
        .routes(routes!(reset_password))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChangePasswordRequest {
    #[schema(value_type = String, required = true)]
    current_password: Option<String>,
    #[schema(schema_with = v::schema::password, required = true)]
    new_password: Option<String>,
}

/// Changes the caller's password.
///
/// The current password is checked like a login: a wrong one answers 401
/// `invalid_credentials` and counts as a failed login (429 beyond the
/// limit). On success every refresh token of the account is revoked, so
/// its other sessions end, and the answer is a fresh token pair for this
/// one.
#[utoipa::path(post, path = "/auth/password", tag = "auth", security(("bearer" = [])),
    request_body = ChangePasswordRequest,
    responses((status = 200, body = Tokens),
        (status = 401, description = "unauthorized (no valid token), invalid_credentials (wrong current password)"),
        (status = 403, description = "clinic_inactive"),
        (status = 422, description = "validation_failed"), (status = 429, description = "too_many_attempts"),
        (status = 503, description = "server_busy")))]
async fn change_password(
    State(state): State<AppState>,
    caller: Caller,
    ClientAddr(client_addr): ClientAddr,
    Json(body): Json<ChangePasswordRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let mut errors = FieldErrors::default();
    let current = v::required(
        body.current_password,
        Ok::<String, String>,
        "currentPassword",
        &mut errors,
    );
    let new = v::required(body.new_password, v::password, "newPassword", &mut errors);
    let (Some(current), Some(new)) = (current, new) else {
        return Err(errors.into());
    };
    let central = &state.databases.central;
    let user = users::find(central, caller.user_id)
        .await?
        .filter(|u| u.is_active)
        .ok_or(ApiError::Unauthorized)?;
    // No fresh tokens for the staff of a suspended clinic.
    if let Some(clinic) = caller.clinic_id {
        if state.states.state(central, clinic).await? != ClinicState::Active {
            return Err(ApiError::ClinicInactive);
        }
    }
    credentials::change(
        central,
        &state.hasher,
        &user,
        current,
        new,
        &client_addr,
        &state.login_limits,
    )
    .await
    .map_err(|error| {
        if matches!(error, CredentialError::InvalidCredentials) {
            state.metrics.login_failed(LoginFailure::InvalidCredentials);
        }
        credential_error(error)
    })?;
    state.accounts.forget(user.id);
    let tokens = sessions(&state).open(&user).await?;
    Ok(ok(tokens))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResetPasswordRequest {
    /// The `token` of the link's fragment (`/reset-password#token=...`).
    #[schema(value_type = String, required = true)]
    token: Option<String>,
    #[schema(schema_with = v::schema::password, required = true)]
    new_password: Option<String>,
}

/// Sets a password with a one-time link.
///
/// The link's account gets the new password, every refresh token of the
/// account is revoked and its failed logins are forgiven; the link stops
/// working. A link that is unknown, expired or already used (or whose
/// account is deactivated) answers 401 `unauthorized`.
#[utoipa::path(post, path = "/auth/password/reset", tag = "auth",
    request_body = ResetPasswordRequest,
    responses((status = 204),
        (status = 401, description = "unauthorized: the link is invalid, expired or already used"),
        (status = 422, description = "validation_failed"), (status = 503, description = "server_busy")))]
async fn reset_password(
    State(state): State<AppState>,
    ClientAddr(client_addr): ClientAddr,
    Json(body): Json<ResetPasswordRequest>,
) -> Result<StatusCode, ApiError> {
    let mut errors = FieldErrors::default();
    let token = v::required(body.token, Ok::<String, String>, "token", &mut errors);
    let new = v::required(body.new_password, v::password, "newPassword", &mut errors);
    let (Some(token), Some(new)) = (token, new) else {
        return Err(errors.into());
    };
    let central = &state.databases.central;
    let user_id = credentials::set_with_link(central, &state.hasher, &token, new, &client_addr)
        .await
        .map_err(credential_error)?;
    state.accounts.forget(user_id);
    Ok(StatusCode::NO_CONTENT)
}

fn credential_error(error: CredentialError) -> ApiError {
    match error {
        CredentialError::InvalidLink => ApiError::InvalidLink,
        CredentialError::InvalidCredentials => ApiError::InvalidCredentials,
        CredentialError::Throttled { retry_after } => ApiError::too_many_attempts(retry_after),
        CredentialError::Hash(error) => error.into(),
        CredentialError::Database(error) => error.into(),
    }
}
