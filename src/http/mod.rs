//! The HTTP API: one module per resource, each exposing `router()`, merged
//! here under `/api/v1` into one OpenAPI-described router. Every `/api/v1`
//! route is registered through `utoipa_axum`, so it is in the document.

pub mod admin;
pub mod appointments;
pub mod audit;
pub mod auth;
pub mod catalogue;
pub mod clinic;
pub mod consent_templates;
pub mod consents;
pub mod conventions;
pub mod documents;
pub mod error;
pub mod extract;
pub mod gdpr;
pub mod list;
pub mod medical_records;
pub mod metrics;
pub mod patient_data;
pub mod patients;
pub mod practitioners;
pub mod settings;
pub mod state;
pub mod system;
pub mod users;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::HeaderName;
use axum::response::IntoResponse;
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use self::error::ApiError;
use self::state::AppState;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

#[derive(OpenApi)]
#[openapi(
    info(title = "MedicalPro API", description = "Multi-clinic medical practice backend. Every clinic's data lives in its own database."),
    modifiers(&BearerAuth),
    components(schemas(error::ErrorEnvelope, extract::Pagination))
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The `/api/v1` routes and the OpenAPI document describing them.
pub fn api() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let resources = [
        auth::router(),
        patients::router(),
        gdpr::router(),
        users::router(),
        practitioners::router(),
        catalogue::router(),
        settings::router(),
        appointments::router(),
        medical_records::router(),
        consent_templates::router(),
        consents::router(),
        documents::router(),
        audit::router(),
        admin::router(),
    ];
    let v1 = resources
        .into_iter()
        .fold(OpenApiRouter::new(), OpenApiRouter::merge);
    let (router, mut openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .nest("/api/v1", v1)
        .split_for_parts();
    conventions::describe(&mut openapi);
    (router, openapi)
}

/// The whole application router.
pub fn router(state: AppState) -> Router {
    let (api, openapi) = api();
    api.merge(system::router(openapi))
        .merge(metrics::router())
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(extract::MAX_BODY_BYTES))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::Internal(anyhow::anyhow!("handler panicked")).into_response()
        }))
        .layer(axum::middleware::from_fn_with_state(state.metrics.clone(), metrics::track))
        .layer(
            // Spans name the route template, never the raw path or query
            // (which could carry search text).
            TraceLayer::new_for_http().make_span_with(|request: &Request| {
                let route = request
                    .extensions()
                    .get::<MatchedPath>()
                    .map(MatchedPath::as_str)
                    .unwrap_or("unmatched");
                let request_id = request
                    .headers()
                    .get(&REQUEST_ID)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                tracing::info_span!("request", method = %request.method(), route, request.id = request_id)
            })
            // `ApiError` logs server errors with their cause, once.
            .on_failure(()),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .with_state(state)
}
