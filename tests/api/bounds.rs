//! Bounded work per request: statement and request timeouts, list
//! parameters within limits, request ids the trail can hold.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use serde_json::json;
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use crate::helpers::{spawn_app, TestApp, TestClinic, TestResponse};

/// Holds an exclusive lock on the clinic's `patients` table until the
/// returned connection rolls back.
async fn lock_patients(app: &TestApp, clinic: &TestClinic) -> PgConnection {
    let mut conn = app.clinic_admin(clinic.id).await;
    sqlx::raw_sql("BEGIN; LOCK TABLE patients IN ACCESS EXCLUSIVE MODE")
        .execute(&mut conn)
        .await
        .unwrap();
    conn
}

/// `request` answered within `limit` (so a test fails rather than hangs).
async fn within<F: std::future::Future<Output = TestResponse>>(
    limit: Duration,
    request: F,
) -> TestResponse {
    tokio::time::timeout(limit, request)
        .await
        .expect("the request was not cut off in time")
}

fn assert_unavailable(response: &TestResponse) {
    assert_eq!(
        response.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        response.body
    );
    assert_eq!(response.code(), "clinic_unavailable");
    assert_eq!(response.body["success"], false);
    assert!(response.headers.contains_key("retry-after"));
}

async fn patient_count(app: &TestApp, clinic: &TestClinic) -> i64 {
    let mut conn = app.clinic_admin(clinic.id).await;
    let count = sqlx::query_scalar("SELECT count(*) FROM patients")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    count
}

/// A statement held up past the statement timeout is cancelled: a read and
/// a write answer 503 with `Retry-After`, the write is not run again, and
/// the next request is served normally.
#[tokio::test]
async fn a_statement_past_the_statement_timeout_answers_503() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Slow statements").await;
    app.create_patient(&clinic.token, "Ada", "Before").await;
    let slow = app
        .instance_with(|settings| settings.serving.statement_timeout = Duration::from_millis(300))
        .await;
    let lock = lock_patients(&app, &clinic).await;
    let limit = Duration::from_secs(10);
    let list = within(limit, slow.get("/api/v1/patients", &clinic.token)).await;
    assert_unavailable(&list);
    let create = within(
        limit,
        slow.post(
            "/api/v1/patients",
            &clinic.token,
            json!({"firstName": "Bob", "lastName": "Blocked"}),
        ),
    )
    .await;
    assert_unavailable(&create);
    lock.close().await.unwrap();
    let after = slow.get("/api/v1/patients", &clinic.token).await;
    assert_eq!(after.status, StatusCode::OK, "{}", after.body);
    assert_eq!(after.body["pagination"]["total"], 1);
    assert_eq!(patient_count(&app, &clinic).await, 1);
    slow.close_instance().await;
    app.cleanup().await;
}

/// A request still running at the request timeout is answered 503 in the
/// error envelope; the server goes on serving. Registration, which may wait
/// its turn to provision, is not cut off.
#[tokio::test]
async fn a_request_past_the_request_timeout_answers_503() {
    let app = spawn_app().await;
    let bounded = app
        .instance_with(|settings| settings.serving.request_timeout = Duration::from_millis(200))
        .await;
    let clinic = bounded.register_clinic("Slow requests").await;
    let lock = lock_patients(&app, &clinic).await;
    let started = std::time::Instant::now();
    let list = within(
        Duration::from_secs(10),
        bounded.get("/api/v1/patients", &clinic.token),
    )
    .await;
    assert_unavailable(&list);
    assert!(started.elapsed() < Duration::from_secs(5));
    lock.close().await.unwrap();
    let after = bounded.get("/api/v1/patients", &clinic.token).await;
    assert_eq!(after.status, StatusCode::OK, "{}", after.body);
    bounded.close_instance().await;
    app.cleanup().await;
}

/// `search` longer than 100 characters is a 422 naming it; an offset past
/// 100000 a 400; both limits themselves are accepted.
#[tokio::test]
async fn list_parameters_are_bounded() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Bounded lists").await;
    for collection in ["patients", "documents", "practitioners", "users"] {
        let path = |query: String| format!("/api/v1/{collection}?{query}");
        let long = app
            .get(&path(format!("search={}", "a".repeat(101))), &clinic.token)
            .await;
        assert_eq!(
            long.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{collection}: {}",
            long.body
        );
        assert_eq!(long.code(), "validation_failed");
        assert_eq!(long.detail_fields(), ["search"]);
        // Characters, not bytes: 100 two-byte characters are fine.
        let full = app
            .get(
                &path(format!("search={}", "%C3%A9".repeat(100))),
                &clinic.token,
            )
            .await;
        assert_eq!(full.status, StatusCode::OK, "{collection}: {}", full.body);
        let deep = app
            .get(&path("offset=100001".to_owned()), &clinic.token)
            .await;
        assert_eq!(deep.status, StatusCode::BAD_REQUEST, "{collection}");
        assert_eq!(deep.code(), "bad_request");
        let deepest = app
            .get(&path("offset=100000".to_owned()), &clinic.token)
            .await;
        assert_eq!(deepest.status, StatusCode::OK, "{collection}");
    }
    let audit = app
        .get("/api/v1/audit?offset=1000000000", &clinic.token)
        .await;
    assert_eq!(audit.status, StatusCode::BAD_REQUEST);
    app.cleanup().await;
}

/// Reads `patient` sending `request_id` as the `x-request-id` header.
async fn read_with_id(
    app: &TestApp,
    clinic: &TestClinic,
    patient: &str,
    request_id: &[u8],
) -> TestResponse {
    app.call_from(
        [127, 0, 0, 1],
        &[("x-request-id", request_id)],
        Method::GET,
        &format!("/api/v1/patients/{patient}"),
        Some(&clinic.token),
        None,
    )
    .await
}

/// A client's request id is kept only if it is 1 to 64 visible ASCII
/// characters; otherwise the response and the audit event carry a
/// generated one.
#[tokio::test]
async fn unusable_request_ids_are_replaced() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Request ids").await;
    let patient = app.create_patient(&clinic.token, "Ida", "Request").await;
    let too_long = "r".repeat(65);
    let unusable: [&[u8]; 5] = [
        b"tab\there",
        b"with space",
        "caf\u{e9}".as_bytes(),
        too_long.as_bytes(),
        b"",
    ];
    let mut answered = Vec::new();
    for sent in unusable {
        let response = read_with_id(&app, &clinic, &patient, sent).await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.body);
        let id = response.headers["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(id.parse::<Uuid>().is_ok(), "{id} for {sent:?}");
        answered.push(id);
    }
    let kept = read_with_id(&app, &clinic, &patient, b"trace-42/a.b").await;
    assert_eq!(kept.headers["x-request-id"], "trace-42/a.b");
    answered.push("trace-42/a.b".to_owned());
    let mut trail = app.audit_trail(clinic.id).await;
    let recorded: Vec<String> =
        sqlx::query_scalar("SELECT request_id FROM audit_events WHERE action = 'read' ORDER BY id")
            .fetch_all(&mut trail)
            .await
            .unwrap();
    assert_eq!(recorded, answered);
    app.cleanup().await;
}
