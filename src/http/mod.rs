//! The HTTP API: one module per resource, each exposing `router()`, merged
//! here under `/api/v1` into one OpenAPI-described router. Every `/api/v1`
//! route is registered through `utoipa_axum`, so it is in the document.

pub mod admin;
pub mod appointments;
pub mod audit;
pub mod auth;
pub mod catalogue;
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
pub mod password;
pub mod patient_data;
pub mod patients;
pub mod practitioners;
pub mod proxies;
mod retry;
pub mod settings;
pub mod state;
pub mod system;
pub mod tenant;
pub mod users;
pub mod web;

use std::time::Duration;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::HeaderName;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
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
        password::router(),
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
        .merge(web::router())
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(extract::MAX_BODY_BYTES))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::Internal(anyhow::anyhow!("handler panicked")).into_response()
        }))
        .layer(axum::middleware::from_fn(retry::cut_reads_again))
        .layer(axum::middleware::from_fn_with_state(
            state.request_timeout,
            within_request_timeout,
        ))
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
        .layer(axum::middleware::map_request(drop_unusable_request_id))
        .layer(axum::middleware::from_fn(web::no_store))
        .with_state(state)
}

/// Routes the request timeout does not cut off: registration waits its
/// turn to provision a clinic (`PROVISION_CONCURRENCY`), and provisioning
/// must not be abandoned halfway.
const WITHOUT_REQUEST_TIMEOUT: [&str; 1] = ["/api/v1/auth/register"];

/// Answers 503 `clinic_unavailable` for a request still running after
/// `REQUEST_TIMEOUT_MS`. The handler is dropped: a transaction it left open
/// is rolled back before its connection serves anyone else.
async fn within_request_timeout(
    State(timeout): State<Duration>,
    request: Request,
    next: Next,
) -> Response {
    let exempt = request
        .extensions()
        .get::<MatchedPath>()
        .is_some_and(|route| WITHOUT_REQUEST_TIMEOUT.contains(&route.as_str()));
    if exempt {
        return next.run(request).await;
    }
    match tokio::time::timeout(timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(
                timeout_ms = timeout.as_millis(),
                "request cut off at the request timeout"
            );
            ApiError::TimedOut.into_response()
        }
    }
}

/// Removes a client's `x-request-id` unless it is one value of 1 to 64
/// visible ASCII characters, so that one is generated in its place: the id
/// is written into every audit event and log line of the request.
async fn drop_unusable_request_id(mut request: Request) -> Request {
    let mut ids = request.headers().get_all(&REQUEST_ID).iter();
    let usable = match (ids.next(), ids.next()) {
        (None, _) => true,
        (Some(id), None) => usable_request_id(id.as_bytes()),
        (Some(_), Some(_)) => false,
    };
    if !usable {
        request.headers_mut().remove(&REQUEST_ID);
    }
    request
}

fn usable_request_id(id: &[u8]) -> bool {
    (1..=64).contains(&id.len()) && id.iter().all(u8::is_ascii_graphic)
}

#[cfg(test)]
mod tests {
    use super::usable_request_id;

    #[test]
    fn request_ids_are_short_visible_ascii() {
        assert!(usable_request_id(b"7f3e-req_1.2:x/y"));
        assert!(usable_request_id(&[b'a'; 64]));
        for bad in [
            &b""[..],
            &[b'a'; 65],
            b"a b",
            b"a\tb",
            "é".as_bytes(),
            b"a\x7f",
        ] {
            assert!(!usable_request_id(bad), "{bad:?}");
        }
    }
}
