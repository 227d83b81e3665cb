//! The staff web app, served at `/` by the same binary: plain ES modules,
//! HTML and CSS embedded with `include_bytes!` (nothing fetched from another
//! server, no build step), under a strict `Content-Security-Policy`. The app
//! talks to the public `/api/v1` only; [`session`] holds its cookie mode.

pub mod session;

use std::sync::OnceLock;

use axum::extract::{Path, Request};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use sha2::{Digest, Sha256};

use super::state::AppState;

/// The app's pages may load and call this origin only, run no inline
/// script or style, and be framed by no one.
pub const POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self'; connect-src 'self'; font-src 'self'; object-src 'none'; \
    base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

macro_rules! assets {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_bytes!(concat!("assets/", $name)) as &[u8])),*]
    };
}

/// Every file of the app, by its path under `/app/`.
pub const ASSETS: &[(&str, &[u8])] = assets![
    "index.html",
    "app.css",
    "main.js",
    "api.js",
    "i18n.js",
    "dom.js",
    "auth.js",
    "patients.js",
    "patient.js",
    "agenda.js",
    "documents.js",
    "admin.js",
    "icon.svg",
];

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(|headers: HeaderMap| async move { asset("index.html", &headers) }))
        .route(
            "/app/{file}",
            get(|Path(file): Path<String>, headers: HeaderMap| async move {
                asset(&file, &headers)
            }),
        )
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        _ => "application/octet-stream",
    }
}

/// Each asset's `ETag`: a browser revalidates (`no-cache`) and gets 304
/// while the binary is the same.
fn etag(index: usize) -> &'static str {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    &TAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|(_, body)| {
                let digest = Sha256::digest(body);
                let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
                format!("\"{hex}\"")
            })
            .collect()
    })[index]
}

fn asset(name: &str, request: &HeaderMap) -> Response {
    let Some(index) = ASSETS.iter().position(|(file, _)| *file == name) else {
        return super::error::ApiError::NotFound.into_response();
    };
    let tag = etag(index);
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .is_some_and(|value| value.as_bytes() == tag.as_bytes());
    let headers = [
        (header::CONTENT_TYPE, content_type(name)),
        (header::CONTENT_SECURITY_POLICY, POLICY),
        (header::CACHE_CONTROL, "no-cache"),
        (header::ETAG, tag),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ];
    if fresh {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    (headers, ASSETS[index].1).into_response()
}

/// Answers that say nothing of caching get `Cache-Control: no-store`: API
/// answers carry patient data and tokens, which no browser or proxy cache
/// should keep.
pub async fn no_store(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    response
        .headers_mut()
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}
