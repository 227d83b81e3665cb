//! Request extractors whose every failure is an [`ApiError`] in the SPEC's
//! envelope: JSON bodies (content type, 1 MiB limit, syntax, field types),
//! query strings, path ids, and the client's address.
//!
//! PostgreSQL text cannot hold NUL characters, so the query and body
//! extractors refuse them for every route: no NUL reaches a query. Headers
//! cannot carry one (the HTTP parser refuses control characters) and path
//! parameters are ids, which a NUL does not parse as.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use super::error::ApiError;
use super::proxies::TrustedProxies;
use super::state::AppState;
use crate::validation::{FieldErrors, Nested};

/// Request bodies larger than this are refused with 413.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// A JSON request body.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let is_json = request
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(';').next())
            .is_some_and(|mime| {
                let mime = mime.trim().to_ascii_lowercase();
                mime == "application/json"
                    || (mime.starts_with("application/") && mime.ends_with("+json"))
            });
        if !is_json {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge
                } else {
                    ApiError::BadRequest("the request body could not be read".into())
                }
            })?;
        parse_json(&bytes).map(Json)
    }
}

/// Reads a body into `T`, through a JSON value:
/// - malformed JSON is a 400;
/// - a string holding a NUL character (which PostgreSQL text cannot store)
///   is a 422 naming the field;
/// - a number written with a zero fraction (`2.0`) is the integer it equals,
///   as JSON Schema reads it;
/// - well-formed JSON of the wrong shape (not an object, unknown field,
///   wrong type) is a 422 naming the field. A repeated key keeps its last
///   value.
fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut value: Value = serde_json::from_slice(bytes)
        .map_err(|_| ApiError::BadRequest("the request body is not valid JSON".into()))?;
    if let Some(path) = nul_path(&value, String::new()) {
        let field = field_name(path);
        return Err(FieldErrors::single(&field, "must not contain NUL characters").into());
    }
    whole_numbers(&mut value);
    let body: Result<Nested<T>, _> = serde_path_to_error::deserialize(value);
    body.map(|Nested(body)| body).map_err(|error| {
        let field = field_name(error.path().to_string());
        FieldErrors::single(&field, error.into_inner().to_string()).into()
    })
}

/// A path as the 422 names it: `body` for the body itself.
fn field_name(path: String) -> String {
    if path.is_empty() || path == "." {
        "body".to_owned()
    } else {
        path
    }
}

/// Where the first NUL is, written as serde_path_to_error does
/// (`items[2].name`); a NUL in a key names the object holding it.
fn nul_path(value: &Value, path: String) -> Option<String> {
    match value {
        Value::String(text) => text.contains('\0').then_some(path),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(index, item)| nul_path(item, format!("{path}[{index}]"))),
        Value::Object(fields) => fields.iter().find_map(|(key, item)| {
            if key.contains('\0') {
                return Some(path.clone());
            }
            let inner = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            nul_path(item, inner)
        }),
        _ => None,
    }
}

/// Rewrites every number with a zero fraction that fits in an `i64` as
/// that integer.
fn whole_numbers(value: &mut Value) {
    /// 2^63: every whole `f64` smaller in magnitude is an `i64`.
    const BOUND: f64 = 9_223_372_036_854_775_808.0;
    match value {
        Value::Number(number) => {
            if let Some(float) = number.as_f64().filter(|_| number.is_f64()) {
                if float.fract() == 0.0 && (-BOUND..BOUND).contains(&float) {
                    *number = (float as i64).into();
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(whole_numbers),
        Value::Object(fields) => fields.values_mut().for_each(whole_numbers),
        _ => {}
    }
}

/// A query string; anything it cannot parse, or a NUL character in it, is
/// a 400.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        // Decoding is one pass, so a NUL decoded anywhere was written `%00`
        // (a raw NUL cannot be in a URI).
        if query.contains("%00") {
            return Err(ApiError::BadRequest(
                "query parameters must not contain NUL characters".into(),
            ));
        }
        serde_urlencoded_from_str(query)
            .map(Query)
            .map_err(|message| ApiError::BadRequest(format!("bad query parameter: {message}")))
    }
}

fn serde_urlencoded_from_str<T: DeserializeOwned>(query: &str) -> Result<T, String> {
    axum::extract::Query::<T>::try_from_uri(
        &format!("/?{query}")
            .parse()
            .map_err(|_| "malformed query string".to_owned())?,
    )
    .map(|axum::extract::Query(value)| value)
    .map_err(|rejection| {
        rejection
            .body_text()
            .replace("Failed to deserialize query string: ", "")
    })
}

/// Path parameters; a malformed id is a 400.
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| Path(value))
            .map_err(|_| ApiError::BadRequest("malformed id in the path".into()))
    }
}

/// The client's address: the TCP peer's, or behind a trusted proxy the one
/// it forwarded (see [`TrustedProxies`]).
pub struct ClientAddr(pub String);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(
            client_addr(parts, &state.trusted_proxies).unwrap_or_else(|| "unknown".to_owned()),
        ))
    }
}

/// The client's address, when the server recorded the TCP peer.
pub fn client_addr(parts: &Parts, proxies: &TrustedProxies) -> Option<String> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| proxies.client_addr(addr.ip(), &parts.headers).to_string())
}

/// `{"success": true, "data": ...}`
#[derive(Serialize)]
pub struct Envelope<T> {
    pub success: bool,
    pub data: T,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pagination: Option<Pagination>,
}

#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
pub struct Pagination {
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
}

pub fn ok<T: Serialize>(data: T) -> axum::Json<Envelope<T>> {
    axum::Json(Envelope {
        success: true,
        data,
        pagination: None,
    })
}

pub fn created<T: Serialize>(data: T) -> (StatusCode, axum::Json<Envelope<T>>) {
    (StatusCode::CREATED, ok(data))
}

pub fn page<T: Serialize>(data: Vec<T>, pagination: Pagination) -> axum::Json<Envelope<Vec<T>>> {
    axum::Json(Envelope {
        success: true,
        data,
        pagination: Some(pagination),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[expect(dead_code, reason = "only deserialised")]
    struct Sample {
        name: String,
    }

    #[test]
    fn malformed_json_is_bad_request_and_wrong_shape_names_the_field() {
        assert!(matches!(
            parse_json::<Sample>(b"{\"name\":"),
            Err(ApiError::BadRequest(_))
        ));
        match parse_json::<Sample>(br#"{"name": 3}"#) {
            Err(ApiError::Validation(details)) => assert_eq!(details[0].field, "name"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse_json::<Sample>(br#"{"name": "x", "extra": 1}"#),
            Err(ApiError::Validation(_))
        ));
        match parse_json::<Sample>(br#"["x"]"#) {
            Err(ApiError::Validation(details)) => assert_eq!(details[0].field, "body"),
            other => panic!("{other:?}"),
        }
    }

    fn field_of<T: DeserializeOwned + std::fmt::Debug>(body: &[u8]) -> Option<String> {
        match parse_json::<T>(body) {
            Ok(_) => None,
            Err(ApiError::Validation(details)) => Some(details[0].field.clone()),
            Err(other) => Some(format!("{other:?}")),
        }
    }

    #[derive(Debug, serde::Deserialize)]
    #[expect(dead_code, reason = "only deserialised")]
    struct Lines {
        items: Vec<serde_json::Value>,
        count: Option<i32>,
    }

    #[test]
    fn a_nul_in_any_string_names_its_field() {
        let nul = |body: &[u8]| field_of::<serde_json::Value>(body);
        assert_eq!(nul(br#"{"name": "a\u0000b"}"#).as_deref(), Some("name"));
        assert_eq!(
            nul(br#"{"items": [{}, {"note": "\u0000"}]}"#).as_deref(),
            Some("items[1].note")
        );
        assert_eq!(nul(br#""\u0000""#).as_deref(), Some("body"));
        assert_eq!(nul(br#"{"a\u0000": 1}"#).as_deref(), Some("body"));
        assert_eq!(nul(br#"{"a": {"b\u0000": 1}}"#).as_deref(), Some("a"));
        assert_eq!(nul(br#"{"name": "a\\u0000b"}"#), None);
        assert!(matches!(
            parse_json::<serde_json::Value>(br#"{"name": "\u0000"#),
            Err(ApiError::BadRequest(_))
        ));
        // NUL is refused before the shape is checked.
        assert_eq!(
            field_of::<Lines>(br#"{"items": ["\u0000"], "count": "x"}"#).as_deref(),
            Some("items[0]")
        );
    }

    #[test]
    fn whole_numbers_read_as_integers_and_fractions_do_not() {
        assert!(parse_json::<Lines>(br#"{"items": [], "count": 3.0}"#).is_ok());
        assert!(parse_json::<Lines>(br#"{"items": [], "count": -2e1}"#).is_ok());
        assert_eq!(
            field_of::<Lines>(br#"{"items": [], "count": 3.5}"#).as_deref(),
            Some("count")
        );
        assert_eq!(
            field_of::<Lines>(br#"{"items": [], "count": 1e300}"#).as_deref(),
            Some("count")
        );
        assert_eq!(
            field_of::<Lines>(br#"{"items": [], "count": 3000000000.0}"#).as_deref(),
            Some("count")
        );
    }
}
