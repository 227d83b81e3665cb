//! `GET /metrics`: the server's counters in the Prometheus text format,
//! kept and written by the `prometheus` crate.
//!
//! Requests are labelled by method, route template (`/api/v1/patients/{id}`,
//! from axum's `MatchedPath`) and status: never by raw path, query or clinic,
//! so the number of series stays bounded and no identifier leaks. Requests
//! that match no route are counted under the route `unmatched`.
//!
//! With `METRICS_TOKEN` set, a scrape must present it as a bearer token.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prometheus::core::Collector;
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use uuid::Uuid;

use super::error::ApiError;
use super::state::AppState;
use crate::tenancy::naming::ClinicId;
use crate::tenancy::sizes::ClinicSize;

/// Upper bounds (seconds) of the request latency buckets.
const REQUEST_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Upper bounds (seconds) of the clinic provisioning buckets.
const PROVISIONING_BUCKETS: &[f64] = &[0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0];
const REQUEST_LABELS: &[&str] = &["method", "route", "status"];

/// Why a login was refused, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginFailure {
    InvalidCredentials,
    Throttled,
}

impl LoginFailure {
    fn label(self) -> &'static str {
        match self {
            LoginFailure::InvalidCredentials => "invalid_credentials",
            LoginFailure::Throttled => "throttled",
        }
    }
}

/// The process's counters, shared by every request; what the rest of the
/// server knows ([`Gauges`]) is added at each scrape.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    durations: HistogramVec,
    provisioning: Histogram,
    login_failures: IntCounterVec,
}

/// Adds `metric` to `registry` and hands it back. The names are constants
/// of this module, each registered once, so registering cannot fail.
fn registered<M: Collector + Clone + 'static>(registry: &Registry, metric: M) -> M {
    registry
        .register(Box::new(metric.clone()))
        .expect("a metric named once");
    metric
}

impl Default for Metrics {
    fn default() -> Self {
        let registry = Registry::new();
        let r = &registry;
        let requests = IntCounterVec::new(
            Opts::new(
                "medicalpro_http_requests_total",
                "HTTP requests answered, by method, route template and status.",
            ),
            REQUEST_LABELS,
        );
        let durations = HistogramVec::new(
            HistogramOpts::new(
                "medicalpro_http_request_duration_seconds",
                "Time to answer an HTTP request, by method, route template and status.",
            )
            .buckets(REQUEST_BUCKETS.to_vec()),
            REQUEST_LABELS,
        );
        let provisioning = Histogram::with_opts(
            HistogramOpts::new(
                "medicalpro_clinic_provisioning_seconds",
                "Time to provision a clinic (database, role, schema) on registration.",
            )
            .buckets(PROVISIONING_BUCKETS.to_vec()),
        );
        let login_failures = IntCounterVec::new(
            Opts::new(
                "medicalpro_login_failures_total",
                "Refused logins, by reason.",
            ),
            &["reason"],
        );
        let build = IntGaugeVec::new(
            Opts::new("medicalpro_build_info", "The running version."),
            &["version"],
        );
        let started = IntGauge::new(
            "process_start_time_seconds",
            "Start time of the process since the Unix epoch, in seconds.",
        );
        let (requests, durations, provisioning, login_failures, build, started) = (
            requests.expect("valid metric"),
            durations.expect("valid metric"),
            provisioning.expect("valid metric"),
            login_failures.expect("valid metric"),
            build.expect("valid metric"),
            started.expect("valid metric"),
        );
        for reason in [LoginFailure::InvalidCredentials, LoginFailure::Throttled] {
            login_failures.with_label_values(&[reason.label()]);
        }
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        started.set(i64::try_from(since_epoch).unwrap_or(i64::MAX));
        registered(r, build);
        registered(r, started);
        Self {
            requests: registered(r, requests),
            durations: registered(r, durations),
            provisioning: registered(r, provisioning),
            login_failures: registered(r, login_failures),
            registry,
        }
    }
}

/// What `/metrics` reads from the rest of the server at scrape time.
pub struct Gauges {
    pub open_clinic_pools: usize,
    pub open_clinic_connections: usize,
    pub central_connections: u32,
    pub central_idle_connections: usize,
    /// Transactions ended without commit, rolled back before reuse.
    pub clinic_rollbacks_on_release: u64,
    /// Clinic connections released in a transaction, closed instead.
    pub clinic_connections_refused_in_transaction: u64,
    /// Each clinic's size, as last sampled (see `tenancy::sizes`).
    pub clinic_sizes: HashMap<Uuid, ClinicSize>,
    /// The clinics holding connections checked out, and how many.
    pub busy_clinics: Vec<(ClinicId, usize)>,
}

impl Gauges {
    /// The scrape-time values, as a registry of their own.
    fn registry(&self) -> prometheus::Result<Registry> {
        let registry = Registry::new();
        let r = &registry;
        let count = count_of;
        registered(
            r,
            IntGauge::new(
                "medicalpro_clinic_pools_open",
                "Clinics opened in this process (credentials unsealed, connections open or not).",
            )?,
        )
        .set(count(self.open_clinic_pools));
        registered(r, IntGauge::new(
            "medicalpro_clinic_connections_open",
            "Clinic database connections open in this process (bounded by MAX_CLINIC_CONNECTIONS).",
        )?)
        .set(count(self.open_clinic_connections));
        registered(r, IntCounter::new(
            "medicalpro_clinic_rollbacks_on_release_total",
            "Clinic transactions ended without commit (an error, an abandoned request), rolled back before their connection served anyone else.",
        )?)
        .inc_by(self.clinic_rollbacks_on_release);
        registered(
            r,
            IntCounter::new(
                "medicalpro_clinic_connections_refused_in_transaction_total",
                "Clinic connections that came back still in a transaction: closed, never reused.",
            )?,
        )
        .inc_by(self.clinic_connections_refused_in_transaction);
        let central = registered(
            r,
            IntGaugeVec::new(
                Opts::new(
                    "medicalpro_central_connections",
                    "Connections of the central database pool, by state.",
                ),
                &["state"],
            )?,
        );
        let sizes = registered(
            r,
            IntGaugeVec::new(
                Opts::new(
                    "medicalpro_clinic_size_bytes",
                    "Each clinic's size on disk (its database, or its schema's tables, indexes and TOAST), sampled every 5 minutes.",
                ),
                &["clinic", "tier"],
            )?,
        );
        for (id, size) in &self.clinic_sizes {
            let tier = if size.shared { "shared" } else { "dedicated" };
            sizes
                .with_label_values(&[&id.to_string(), tier])
                .set(size.bytes);
        }
        let busy = registered(
            r,
            IntGaugeVec::new(
                Opts::new(
                    "medicalpro_clinic_connections_busy",
                    "Connections each clinic holds checked out in this process right now (on the shared tier, of its pod's); clinics holding none are not listed.",
                ),
                &["clinic"],
            )?,
        );
        for (id, count) in &self.busy_clinics {
            busy.with_label_values(&[&id.to_string()])
                .set(count_of(*count));
        }
        let idle = self.central_idle_connections;
        let busy = (self.central_connections as usize).saturating_sub(idle);
        central.with_label_values(&["idle"]).set(count(idle));
        central.with_label_values(&["busy"]).set(count(busy));
        Ok(registry)
    }
}

impl Metrics {
    pub fn observe_request(&self, method: &Method, route: &str, status: u16, took: Duration) {
        let status = status.to_string();
        let labels = [method_label(method), route, &status];
        self.requests.with_label_values(&labels).inc();
        self.durations
            .with_label_values(&labels)
            .observe(took.as_secs_f64());
    }

    pub fn observe_provisioning(&self, took: Duration) {
        self.provisioning.observe(took.as_secs_f64());
    }

    pub fn login_failed(&self, reason: LoginFailure) {
        self.login_failures
            .with_label_values(&[reason.label()])
            .inc();
    }

    /// The exposition text.
    pub fn render(&self, gauges: &Gauges) -> prometheus::Result<String> {
        let mut families = self.registry.gather();
        families.extend(gauges.registry()?.gather());
        TextEncoder::new().encode_to_string(&families)
    }
}

/// Standard methods by name; anything else is `OTHER`, so a client cannot
/// create series at will.
fn count_of(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// Middleware counting every request under its route template.
pub async fn track(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = request.method().clone();
    let started = Instant::now();
    let response = next.run(request).await;
    metrics.observe_request(
        &method,
        &route,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

pub fn router() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}

/// With `METRICS_TOKEN` set, answers only `Authorization: Bearer <token>`
/// (compared in constant time); anything else is 401.
async fn metrics(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    if let Some(token) = &state.metrics_token {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "));
        if !presented.is_some_and(|presented| token.matches(presented)) {
            return Err(ApiError::Unauthorized);
        }
    }
    let gauges = Gauges {
        open_clinic_pools: state.pools.open_clinics(),
        open_clinic_connections: state.pools.open_connections(),
        central_connections: state.databases.central.size(),
        central_idle_connections: state.databases.central.num_idle(),
        clinic_rollbacks_on_release: state.pools.rolled_back_on_release(),
        clinic_connections_refused_in_transaction: state.pools.refused_in_transaction(),
        clinic_sizes: state.sizes.get(),
        busy_clinics: state.pools.busy_clinics(),
    };
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state
            .metrics
            .render(&gauges)
            .map_err(|e| ApiError::Internal(e.into()))?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn empty() -> Gauges {
        Gauges {
            open_clinic_pools: 2,
            open_clinic_connections: 4,
            central_connections: 3,
            central_idle_connections: 1,
            clinic_rollbacks_on_release: 0,
            clinic_connections_refused_in_transaction: 0,
            clinic_sizes: HashMap::new(),
            busy_clinics: Vec::new(),
        }
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let metrics = Metrics::default();
        let route = "/api/v1/patients/{id}";
        metrics.observe_request(&Method::GET, route, 200, Duration::from_millis(7));
        metrics.observe_request(&Method::GET, route, 200, Duration::from_millis(300));
        let text = metrics.render(&empty()).unwrap();
        let labels = r#"method="GET",route="/api/v1/patients/{id}",status="200""#;
        assert!(
            text.contains(&format!("medicalpro_http_requests_total{{{labels}}} 2")),
            "{text}"
        );
        assert!(text.contains(&format!(
            "medicalpro_http_request_duration_seconds_bucket{{{labels},le=\"0.005\"}} 0"
        )));
        assert!(text.contains(&format!(
            "medicalpro_http_request_duration_seconds_bucket{{{labels},le=\"0.01\"}} 1"
        )));
        assert!(text.contains(&format!(
            "medicalpro_http_request_duration_seconds_bucket{{{labels},le=\"0.5\"}} 2"
        )));
        assert!(text.contains(&format!(
            "medicalpro_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} 2"
        )));
        assert!(text.contains("medicalpro_clinic_pools_open 2"));
        assert!(text.contains("medicalpro_central_connections{state=\"busy\"} 2"));
    }

    #[test]
    fn unknown_methods_and_odd_labels_cannot_break_the_format() {
        let metrics = Metrics::default();
        let method = Method::from_bytes(b"BREW").unwrap();
        metrics.observe_request(&method, "a\"b\\c\nd", 418, Duration::ZERO);
        let text = metrics.render(&empty()).unwrap();
        assert!(
            text.contains(r#"method="OTHER",route="a\"b\\c\nd",status="418""#),
            "{text}"
        );
    }

    #[test]
    fn login_failures_and_provisioning_are_counted() {
        let metrics = Metrics::default();
        metrics.login_failed(LoginFailure::Throttled);
        metrics.login_failed(LoginFailure::Throttled);
        metrics.observe_provisioning(Duration::from_millis(800));
        let text = metrics.render(&empty()).unwrap();
        assert!(text.contains("medicalpro_login_failures_total{reason=\"throttled\"} 2"));
        assert!(text.contains("medicalpro_login_failures_total{reason=\"invalid_credentials\"} 0"));
        assert!(text.contains("medicalpro_clinic_provisioning_seconds_bucket{le=\"1\"} 1"));
        assert!(text.contains("medicalpro_clinic_provisioning_seconds_count 1"));
    }

    #[test]
    fn each_clinic_has_its_size_and_busy_connections() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let mut gauges = empty();
        gauges.clinic_sizes.insert(
            a,
            ClinicSize {
                bytes: 7_340_032,
                shared: false,
            },
        );
        gauges.clinic_sizes.insert(
            b,
            ClinicSize {
                bytes: 393_216,
                shared: true,
            },
        );
        gauges.busy_clinics.push((ClinicId(b), 2));
        let text = Metrics::default().render(&gauges).unwrap();
        assert!(text.contains(&format!(
            "medicalpro_clinic_size_bytes{{clinic=\"{a}\",tier=\"dedicated\"}} 7340032"
        )));
        assert!(text.contains(&format!(
            "medicalpro_clinic_size_bytes{{clinic=\"{b}\",tier=\"shared\"}} 393216"
        )));
        assert!(text.contains(&format!(
            "medicalpro_clinic_connections_busy{{clinic=\"{b}\"}} 2"
        )));
        assert!(!text.contains(&format!(
            "medicalpro_clinic_connections_busy{{clinic=\"{a}\"}}"
        )));
    }
}
