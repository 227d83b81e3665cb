//! `GET /metrics`: the server's counters in Prometheus text format, written
//! by hand (a few counters and histograms need no crate).
//!
//! Requests are labelled by method, route template (`/api/v1/patients/{id}`,
//! from axum's `MatchedPath`) and status: never by raw path, query or clinic,
//! so the number of series stays bounded and no identifier leaks. Requests
//! that match no route are counted under the route `unmatched`.
//!
//! With `METRICS_TOKEN` set, a scrape must present it as a bearer token.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::error::ApiError;
use super::state::AppState;

/// Upper bounds (seconds) of the request latency buckets.
const REQUEST_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Upper bounds (seconds) of the clinic provisioning buckets.
const PROVISIONING_BUCKETS: &[f64] = &[0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0];

/// Why a login was refused, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
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

/// The process's counters, shared by every request.
pub struct Metrics {
    started_at: SystemTime,
    requests: Mutex<BTreeMap<RequestKey, Histogram>>,
    provisioning: Mutex<Histogram>,
    login_failures: Mutex<BTreeMap<LoginFailure, u64>>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct RequestKey {
    method: &'static str,
    route: String,
    status: u16,
}

#[derive(Debug, Clone)]
struct Histogram {
    bounds: &'static [f64],
    /// Cumulative: `buckets[i]` counts observations `<= bounds[i]`.
    buckets: Vec<u64>,
    count: u64,
    sum: f64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            buckets: vec![0; bounds.len()],
            count: 0,
            sum: 0.0,
        }
    }

    fn observe(&mut self, seconds: f64) {
        for (bucket, bound) in self.buckets.iter_mut().zip(self.bounds) {
            if seconds <= *bound {
                *bucket += 1;
            }
        }
        self.count += 1;
        self.sum += seconds;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (bucket, bound) in self.buckets.iter().zip(self.bounds) {
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {bucket}");
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            started_at: SystemTime::now(),
            requests: Mutex::new(BTreeMap::new()),
            provisioning: Mutex::new(Histogram::new(PROVISIONING_BUCKETS)),
            login_failures: Mutex::new(BTreeMap::new()),
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
}

impl Metrics {
    pub fn observe_request(&self, method: &Method, route: &str, status: u16, took: Duration) {
        let key = RequestKey {
            method: method_label(method),
            route: route.to_owned(),
            status,
        };
        self.requests
            .lock()
            .expect("metrics lock")
            .entry(key)
            .or_insert_with(|| Histogram::new(REQUEST_BUCKETS))
            .observe(took.as_secs_f64());
    }

    pub fn observe_provisioning(&self, took: Duration) {
        self.provisioning
            .lock()
            .expect("metrics lock")
            .observe(took.as_secs_f64());
    }

    pub fn login_failed(&self, reason: LoginFailure) {
        *self
            .login_failures
            .lock()
            .expect("metrics lock")
            .entry(reason)
            .or_default() += 1;
    }

    /// The exposition text.
    pub fn render(&self, gauges: &Gauges) -> String {
        let mut out = String::new();
        let requests = self.requests.lock().expect("metrics lock").clone();
        header(
            &mut out,
            "medicalpro_http_requests_total",
            "counter",
            "HTTP requests answered, by method, route template and status.",
        );
        for (key, histogram) in &requests {
            let _ = writeln!(
                out,
                "medicalpro_http_requests_total{{{}}} {}",
                request_labels(key),
                histogram.count
            );
        }
        header(
            &mut out,
            "medicalpro_http_request_duration_seconds",
            "histogram",
            "Time to answer an HTTP request, by method, route template and status.",
        );
        for (key, histogram) in &requests {
            histogram.render(
                &mut out,
                "medicalpro_http_request_duration_seconds",
                &request_labels(key),
            );
        }
        header(
            &mut out,
            "medicalpro_clinic_provisioning_seconds",
            "histogram",
            "Time to provision a clinic (database, role, schema) on registration.",
        );
        let provisioning = self.provisioning.lock().expect("metrics lock").clone();
        provisioning.render(&mut out, "medicalpro_clinic_provisioning_seconds", "");
        header(
            &mut out,
            "medicalpro_login_failures_total",
            "counter",
            "Refused logins, by reason.",
        );
        let failures = self.login_failures.lock().expect("metrics lock").clone();
        for reason in [LoginFailure::InvalidCredentials, LoginFailure::Throttled] {
            let _ = writeln!(
                out,
                "medicalpro_login_failures_total{{reason=\"{}\"}} {}",
                reason.label(),
                failures.get(&reason).copied().unwrap_or(0)
            );
        }
        header(
            &mut out,
            "medicalpro_clinic_pools_open",
            "gauge",
            "Clinics opened in this process (credentials unsealed, connections open or not).",
        );
        let _ = writeln!(
            out,
            "medicalpro_clinic_pools_open {}",
            gauges.open_clinic_pools
        );
        header(
            &mut out,
            "medicalpro_clinic_connections_open",
            "gauge",
            "Clinic database connections open in this process (bounded by MAX_CLINIC_CONNECTIONS).",
        );
        let _ = writeln!(
            out,
            "medicalpro_clinic_connections_open {}",
            gauges.open_clinic_connections
        );
        header(
            &mut out,
            "medicalpro_clinic_rollbacks_on_release_total",
            "counter",
            "Clinic transactions ended without commit (an error, an abandoned request), rolled back before their connection served anyone else.",
        );
        let _ = writeln!(
            out,
            "medicalpro_clinic_rollbacks_on_release_total {}",
            gauges.clinic_rollbacks_on_release
        );
        header(
            &mut out,
            "medicalpro_clinic_connections_refused_in_transaction_total",
            "counter",
            "Clinic connections that came back still in a transaction: closed, never reused.",
        );
        let _ = writeln!(
            out,
            "medicalpro_clinic_connections_refused_in_transaction_total {}",
            gauges.clinic_connections_refused_in_transaction
        );
        header(
            &mut out,
            "medicalpro_central_connections",
            "gauge",
            "Connections of the central database pool, by state.",
        );
        let idle = gauges.central_idle_connections;
        let busy = (gauges.central_connections as usize).saturating_sub(idle);
        let _ = writeln!(
            out,
            "medicalpro_central_connections{{state=\"idle\"}} {idle}"
        );
        let _ = writeln!(
            out,
            "medicalpro_central_connections{{state=\"busy\"}} {busy}"
        );
        header(
            &mut out,
            "medicalpro_build_info",
            "gauge",
            "The running version.",
        );
        let _ = writeln!(
            out,
            "medicalpro_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        header(
            &mut out,
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since the Unix epoch, in seconds.",
        );
        let started = self
            .started_at
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let _ = writeln!(out, "process_start_time_seconds {started}");
        out
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn request_labels(key: &RequestKey) -> String {
    format!(
        "method=\"{}\",route=\"{}\",status=\"{}\"",
        key.method,
        escape(&key.route),
        key.status
    )
}

/// Label values escape backslash, double quote and newline.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Standard methods by name; anything else is `OTHER`, so a client cannot
/// create series at will.
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
    };
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(&gauges),
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
        }
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let metrics = Metrics::default();
        let route = "/api/v1/patients/{id}";
        metrics.observe_request(&Method::GET, route, 200, Duration::from_millis(7));
        metrics.observe_request(&Method::GET, route, 200, Duration::from_millis(300));
        let text = metrics.render(&empty());
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
        let text = metrics.render(&empty());
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
        let text = metrics.render(&empty());
        assert!(text.contains("medicalpro_login_failures_total{reason=\"throttled\"} 2"));
        assert!(text.contains("medicalpro_login_failures_total{reason=\"invalid_credentials\"} 0"));
        assert!(text.contains("medicalpro_clinic_provisioning_seconds_bucket{le=\"1\"} 1"));
        assert!(text.contains("medicalpro_clinic_provisioning_seconds_count 1"));
    }
}
