//! Request extractors whose every failure is an [`ApiError`] in the SPEC's
//! envelope: JSON bodies (content type, 1 MiB limit, syntax, field types),
//! query strings, path ids, and the client's address.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::error::ApiError;
use crate::validation::FieldErrors;

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

/// Malformed JSON is a 400; well-formed JSON of the wrong shape (unknown
/// field, wrong type) is a 422 naming the field.
fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let deserializer = &mut serde_json::Deserializer::from_slice(bytes);
    let result: Result<T, _> = serde_path_to_error::deserialize(deserializer);
    result.map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => {
                let field = if path == "." { "body".to_owned() } else { path };
                ApiError::from(FieldErrors::single(&field, describe(&inner)))
            }
            _ => ApiError::BadRequest("the request body is not valid JSON".into()),
        }
    })
}

/// serde's message without the line and column suffix.
fn describe(error: &serde_json::Error) -> String {
    let text = error.to_string();
    match text.rfind(" at line ") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

/// A query string; anything it cannot parse is a 400.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
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

/// The address of the connected client (the TCP peer; a proxy in front
/// should be trusted explicitly before its headers are, which we do not).
pub struct ClientAddr(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let addr = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip().to_string())
            .unwrap_or_else(|| "unknown".to_owned());
        Ok(ClientAddr(addr))
    }
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
    }
}
