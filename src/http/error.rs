//! The one error type of the HTTP layer and its JSON envelope
//! `{"success": false, "error": {"code", "message", "details"}}`, with the
//! SPEC's codes. Server-side failures are logged once here and answered
//! without internals.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::password::HashError;
use crate::central::erasures::LedgerError;
use crate::clinic::gdpr::RetentionHold;
use crate::tenancy::pools::PoolError;
use crate::validation::{FieldError, FieldErrors};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("authentication required")]
    Unauthorized,
    #[error("invalid email or password")]
    InvalidCredentials,
    /// A password link that is unknown, expired or used: 401 `unauthorized`.
    #[error("this link is invalid, has expired or was already used: ask for a new one")]
    InvalidLink,
    #[error("your role may not do this")]
    Forbidden,
    /// `REGISTRATION=closed`.
    #[error("registration of new clinics is closed: the platform's operator creates clinics")]
    RegistrationClosed,
    #[error("this clinic is suspended or closed")]
    ClinicInactive,
    /// A cookie-based session request that may come from another site
    /// (`http::web::session`).
    #[error("refused: a browser session request must come from this site's own pages")]
    CrossSite,
    #[error("not found")]
    NotFound,
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("request body is larger than 1 MiB")]
    PayloadTooLarge,
    #[error("Content-Type must be application/json")]
    UnsupportedMediaType,
    #[error("some fields are invalid")]
    Validation(Vec<FieldError>),
    #[error("the law obliges the clinic to keep some of this patient's records")]
    RetentionApplies(Vec<RetentionHold>),
    /// `retry_after`: seconds until the next attempt may be checked.
    #[error("too many attempts, try again later")]
    TooManyAttempts { retry_after: u64 },
    #[error("the clinic's database cannot be reached, try again shortly")]
    ClinicUnavailable,
    /// The connection was ended under the request (a move's cut-off, a
    /// restore, a server restart): answered as `clinic_unavailable`,
    /// marked [`ConnectionCut`] so that a read is answered again once
    /// (`super::retry`).
    #[error("the clinic's database cannot be reached, try again shortly")]
    ConnectionCut,
    /// A request past `REQUEST_TIMEOUT_MS`, or a statement past
    /// `STATEMENT_TIMEOUT_MS`: answered as `clinic_unavailable`.
    #[error("the request took too long, try again shortly")]
    TimedOut,
    /// Every password-hashing slot stayed taken (see `auth::password`).
    #[error("the server is busy, try again shortly")]
    ServerBusy,
    /// Every active database server holds its `max_clinics`.
    #[error("no database server has room for a new clinic, try again later")]
    NoCapacity,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("internal error")]
    Internal(anyhow::Error),
}

/// The error envelope, for the OpenAPI document.
#[derive(Serialize, ToSchema)]
pub struct ErrorEnvelope {
    pub success: bool,
    pub error: ErrorBody,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
    /// Per field `{field, message}` for 422; per retained item `{kind, id,
    /// retainedUntil, rule}` for `retention_applies`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<Object>)]
    pub details: Vec<serde_json::Value>,
}

/// Seconds a client should wait before retrying when a clinic is unavailable.
const CLINIC_RETRY_AFTER_SECONDS: u64 = 5;
/// Seconds a client should wait before retrying when the server is busy.
const BUSY_RETRY_AFTER_SECONDS: u64 = 1;
/// Seconds a client should wait before registering again when no server has
/// room (an operator must add one or raise a limit).
const NO_CAPACITY_RETRY_AFTER_SECONDS: u64 = 3600;

impl ApiError {
    pub fn conflict(message: impl Into<String>) -> Self {
        ApiError::Conflict {
            code: "conflict",
            message: message.into(),
        }
    }

    /// 429 `too_many_attempts`, its wait rounded up to whole seconds: a
    /// client waiting that long is admitted.
    pub fn too_many_attempts(retry_after: std::time::Duration) -> Self {
        ApiError::TooManyAttempts {
            retry_after: retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized | ApiError::InvalidCredentials | ApiError::InvalidLink => {
                StatusCode::UNAUTHORIZED
            }
            ApiError::Forbidden
            | ApiError::ClinicInactive
            | ApiError::RegistrationClosed
            | ApiError::CrossSite => StatusCode::FORBIDDEN,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::Conflict { .. } | ApiError::RetentionApplies(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooManyAttempts { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::ClinicUnavailable
            | ApiError::ConnectionCut
            | ApiError::TimedOut
            | ApiError::ServerBusy
            | ApiError::NoCapacity => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Unauthorized | ApiError::InvalidLink => "unauthorized",
            ApiError::InvalidCredentials => "invalid_credentials",
            ApiError::Forbidden | ApiError::CrossSite => "forbidden",
            ApiError::RegistrationClosed => "registration_closed",
            ApiError::ClinicInactive => "clinic_inactive",
            ApiError::NotFound => "not_found",
            ApiError::Conflict { code, .. } => code,
            ApiError::PayloadTooLarge => "payload_too_large",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::Validation(_) => "validation_failed",
            ApiError::RetentionApplies(_) => "retention_applies",
            ApiError::TooManyAttempts { .. } => "too_many_attempts",
            ApiError::ClinicUnavailable | ApiError::ConnectionCut | ApiError::TimedOut => {
                "clinic_unavailable"
            }
            ApiError::ServerBusy => "server_busy",
            ApiError::NoCapacity => "no_capacity",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::Internal(_) => "internal",
        }
    }
}

impl From<FieldErrors> for ApiError {
    fn from(errors: FieldErrors) -> Self {
        ApiError::Validation(errors.into_details())
    }
}

/// The 503 a database error is answered with, and what to log, unless it
/// is a fault (500): a connection lost under the request (its backend ended
/// by a move's cut-off, a restore putting the database in place, a server
/// restart), a statement cancelled past the statement timeout, a write
/// refused by a move's write freeze.
fn unavailable(error: &sqlx::Error) -> Option<(ApiError, &'static str)> {
    use crate::tenancy::pools::{connection_lost, statement_cancelled, writes_frozen};
    if connection_lost(error) {
        Some((
            ApiError::ConnectionCut,
            "database connection lost during the request",
        ))
    } else if statement_cancelled(error) {
        Some((
            ApiError::TimedOut,
            "statement cancelled (statement timeout)",
        ))
    } else if writes_frozen(error) {
        Some((
            ApiError::ClinicUnavailable,
            "clinic database refused a write (write freeze of a move)",
        ))
    } else {
        None
    }
}

impl From<sqlx::Error> for ApiError {
    /// A 503 to retry when [`unavailable`] says so; any other error is a 500.
    fn from(error: sqlx::Error) -> Self {
        match unavailable(&error) {
            Some((answer, what)) => {
                tracing::warn!(%error, what);
                answer
            }
            None => ApiError::Internal(error.into()),
        }
    }
}

impl From<anyhow::Error> for ApiError {
    /// The same 503s when the database error reaches the handler wrapped in
    /// context.
    fn from(error: anyhow::Error) -> Self {
        let found = error
            .chain()
            .filter_map(|cause| cause.downcast_ref::<sqlx::Error>())
            .find_map(unavailable);
        match found {
            Some((answer, what)) => {
                tracing::warn!(error = %format!("{error:#}"), what);
                answer
            }
            None => ApiError::Internal(error),
        }
    }
}

impl From<HashError> for ApiError {
    fn from(error: HashError) -> Self {
        match error {
            HashError::Busy => ApiError::ServerBusy,
            HashError::Failed(_) => ApiError::Internal(error.into()),
        }
    }
}

impl From<PoolError> for ApiError {
    fn from(error: PoolError) -> Self {
        match error {
            PoolError::NotProvisioned(_) => ApiError::ClinicInactive,
            PoolError::Unavailable(..) => {
                tracing::warn!(error = %format!("{:#}", anyhow::Error::from(error)), "clinic database unavailable");
                ApiError::ClinicUnavailable
            }
            // The clinic is out of reach until an operator restores the key
            // that sealed its password: a 503 for the caller, an error for
            // the operator.
            PoolError::Unsealable(_) => {
                tracing::error!(%error, "clinic unavailable");
                ApiError::ClinicUnavailable
            }
            PoolError::Central(_) => ApiError::Internal(error.into()),
        }
    }
}

impl From<LedgerError> for ApiError {
    /// An erasure that cannot be recorded is not made: 503, as for a clinic
    /// whose password cannot be unsealed.
    fn from(error: LedgerError) -> Self {
        match error {
            LedgerError::Unsealable(_) => {
                tracing::error!(%error, "erasure ledger unavailable");
                ApiError::ClinicUnavailable
            }
            LedgerError::Database(error) => error.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let ApiError::Internal(error) = &self {
            tracing::error!(error = %format!("{error:#}"), "request failed");
        }
        let cut = matches!(self, ApiError::ConnectionCut);
        let retry_after = match self {
            ApiError::ClinicUnavailable | ApiError::ConnectionCut | ApiError::TimedOut => {
                Some(CLINIC_RETRY_AFTER_SECONDS)
            }
            ApiError::ServerBusy => Some(BUSY_RETRY_AFTER_SECONDS),
            ApiError::NoCapacity => Some(NO_CAPACITY_RETRY_AFTER_SECONDS),
            ApiError::TooManyAttempts { retry_after } => Some(retry_after),
            _ => None,
        };
        let message = self.to_string();
        let code = self.code().to_owned();
        let details = match self {
            ApiError::Validation(details) => details.iter().map(to_json).collect(),
            ApiError::RetentionApplies(holds) => holds.iter().map(to_json).collect(),
            _ => Vec::new(),
        };
        let body = ErrorEnvelope {
            success: false,
            error: ErrorBody {
                code,
                message,
                details,
            },
        };
        let mut response = (status, Json(body)).into_response();
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if cut {
            response.extensions_mut().insert(ConnectionCut);
        }
        response
    }
}

/// Marks the answer of a request whose database connection was ended under
/// it.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionCut;

fn to_json<T: Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}

/// A lookup's `Ok(None)` is a 404 (`not_found`).
pub trait Found<T> {
    fn found(self) -> Result<T, ApiError>;
}

impl<T, E: Into<ApiError>> Found<T> for Result<Option<T>, E> {
    fn found(self) -> Result<T, ApiError> {
        self.map_err(Into::into)?.ok_or(ApiError::NotFound)
    }
}

/// Turns named database constraint violations into API errors.
pub trait ResultExt<T> {
    /// A violation of `constraint` becomes `map()`'s error.
    fn on_constraint(self, constraint: &str, map: impl FnOnce() -> ApiError)
        -> Result<T, ApiError>;
}

impl<T> ResultExt<T> for Result<T, sqlx::Error> {
    fn on_constraint(
        self,
        constraint: &str,
        map: impl FnOnce() -> ApiError,
    ) -> Result<T, ApiError> {
        self.map_err(|error| match &error {
            sqlx::Error::Database(db) if db.constraint() == Some(constraint) => map(),
            _ => error.into(),
        })
    }
}

/// Lets constraint mappings chain: a violation already turned into an
/// internal error is still recognised by its constraint name.
impl<T> ResultExt<T> for Result<T, ApiError> {
    fn on_constraint(
        self,
        constraint: &str,
        map: impl FnOnce() -> ApiError,
    ) -> Result<T, ApiError> {
        self.map_err(|error| match &error {
            ApiError::Internal(inner) => match inner.downcast_ref::<sqlx::Error>() {
                Some(sqlx::Error::Database(db)) if db.constraint() == Some(constraint) => map(),
                _ => error,
            },
            _ => error,
        })
    }
}
