//! Process endpoints outside `/api/v1`: liveness, readiness, and the API's
//! own description.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse};
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

/// A browsable page for the OpenAPI document (Swagger UI, loaded by the
/// browser from its CDN).
async fn docs() -> Html<&'static str> {
    Html(
        r##"<!doctype html>
<html><head><meta charset="utf-8"><title>MedicalPro API</title>
<link rel="stylesheet" href="https://unpkg.com/swagger-ui-dist@5/swagger-ui.css"></head>
<body><div id="ui"></div>
<script src="https://unpkg.com/swagger-ui-dist@5/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({url: "/api/v1/openapi.json", dom_id: "#ui"});</script>
</body></html>"##,
    )
}
