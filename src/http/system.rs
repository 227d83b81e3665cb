//! Process endpoints outside `/api/v1`: liveness, readiness, and the API's
//! own description.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use serde_json::json;
use utoipa::openapi::OpenApi;

use super::state::AppState;
use crate::migrations;

pub fn router(openapi: OpenApi) -> Router<AppState> {
    let document = Arc::new(openapi.to_json().expect("the OpenAPI document serialises"));
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route(
            "/api/v1/openapi.json",
            get(move || async move {
                (
                    [(header::CONTENT_TYPE, "application/json")],
                    document.as_str().to_owned(),
                )
            }),
        )
        .route("/docs", get(docs))
        .route("/docs/docs.js", get(docs_script))
        .route("/docs/docs.css", get(docs_style))
}

async fn health() -> impl IntoResponse {
    axum::Json(json!({"success": true, "data": {"status": "up"}}))
}

/// Ready when the central database answers and is at the newest migration.
async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    let latest = migrations::latest_version(&migrations::CENTRAL);
    let applied = async {
        let mut conn = state.databases.central.acquire().await?;
        migrations::applied_version(&mut conn).await
    }
    .await;
    match applied {
        Ok(version) if version >= latest => (
            StatusCode::OK,
            axum::Json(
                json!({"success": true, "data": {"status": "ready", "centralSchemaVersion": version}}),
            ),
        ),
        Ok(version) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"success": false, "error": {"code": "not_ready",
                "message": format!("central schema at version {version}, expected {latest}")}})),
        ),
        Err(error) => {
            tracing::warn!(%error, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(json!({"success": false, "error": {"code": "not_ready",
                    "message": "the central database cannot be reached"}})),
            )
        }
    }
}

/// The browsable page for the OpenAPI document: its HTML, script and style
/// are inside the binary (no third-party server at run time), served under
/// a policy that allows nothing but this origin's own files.
const DOCS_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

async fn docs() -> impl IntoResponse {
    docs_file("text/html; charset=utf-8", include_str!("docs/index.html"))
}

async fn docs_script() -> impl IntoResponse {
    docs_file(
        "text/javascript; charset=utf-8",
        include_str!("docs/docs.js"),
    )
}

async fn docs_style() -> impl IntoResponse {
    docs_file("text/css; charset=utf-8", include_str!("docs/docs.css"))
}

fn docs_file(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, DOCS_POLICY),
        ],
        body,
    )
}
