//! Registration cannot be used to fill the platform: it can be closed, it is
//! rate-limited per client address and globally (across instances), and a
//! database server holding its `max_clinics` takes no new clinic.

use axum::http::StatusCode;
use futures::future::join_all;
use medicalpro::central::registrations::WINDOW_MINUTES;
use medicalpro::config::Registration;
use medicalpro::tenancy::provisioning::NewClinic;
use uuid::Uuid;

use crate::helpers::{spawn_app_with, unique_email, TestApp, TestResponse};

fn retry_after(response: &TestResponse) -> u64 {
    response
        .headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After")
}

async fn clinics(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM companies")
        .fetch_one(&app.state.databases.central)
        .await
        .unwrap()
}

/// A 429 from the registration limits, whose `Retry-After` is within the
/// hour's window.
fn assert_limited(response: &TestResponse) {
    assert_eq!(
        response.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        response.body
    );
    assert_eq!(response.code(), "too_many_attempts");
    let window = u64::from(WINDOW_MINUTES as u32) * 60;
    let wait = retry_after(response);
    assert!((window - 60..=window).contains(&wait), "Retry-After {wait}");
}

#[tokio::test]
async fn closed_registration_is_refused_and_the_operator_still_creates_clinics() {
    let app = spawn_app_with(|s| s.serving.registration.registration = Registration::Closed).await;
    let refused = app.register_from([10, 1, 0, 1], "Closed").await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert_eq!(refused.code(), "registration_closed");
    // Even a malformed body gets the same answer.
    let malformed = app
        .call(
            axum::http::Method::POST,
            "/api/v1/auth/register",
            None,
            Some(serde_json::json!({"clinicName": 3})),
        )
        .await;
    assert_eq!(malformed.code(), "registration_closed");
    assert_eq!(clinics(&app).await, 0);
    let clinic = NewClinic {
        name: "By the operator".into(),
        email: unique_email(),
        phone: None,
        country: "FR".into(),
    };
    app.state.provisioner.provision(clinic, None).await.unwrap();
    assert_eq!(clinics(&app).await, 1);
    app.cleanup().await;
}

/// Two registrations from one address, one on each instance, use up its
/// hour: a third is refused on either instance with `Retry-After`, while
/// another address still registers.
#[tokio::test]
async fn registrations_per_address_are_limited_across_instances() {
    let app = spawn_app_with(|s| s.serving.registration.per_address_per_hour = 2).await;
    let other = app.second_instance().await;
    let from = [10, 2, 0, 1];
    let first = app.register_from(from, "First").await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    let second = other.register_from(from, "Second").await;
    assert_eq!(second.status, StatusCode::CREATED, "{}", second.body);
    assert_limited(&app.register_from(from, "Third").await);
    assert_limited(&other.register_from(from, "Third again").await);
    let elsewhere = other.register_from([10, 2, 0, 2], "Elsewhere").await;
    assert_eq!(elsewhere.status, StatusCode::CREATED, "{}", elsewhere.body);
    assert_eq!(clinics(&app).await, 3);
    other.close_instance().await;
    app.cleanup().await;
}

/// Eight registrations at once from eight addresses, on two instances,
/// with a global limit of three: exactly three clinics are made.
#[tokio::test]
async fn the_global_registration_limit_holds_under_concurrent_registrations() {
    let app = spawn_app_with(|s| s.serving.registration.per_hour = 3).await;
    let other = app.second_instance().await;
    let answers = join_all((0..8u8).map(|i| {
        let instance = if i % 2 == 0 { &app } else { &other };
        async move { instance.register_from([10, 3, 0, i + 1], "Flood").await }
    }))
    .await;
    let created = answers
        .iter()
        .filter(|a| a.status == StatusCode::CREATED)
        .count();
    assert_eq!(
        created,
        3,
        "{:?}",
        answers.iter().map(|a| &a.body).collect::<Vec<_>>()
    );
    for answer in answers.iter().filter(|a| a.status != StatusCode::CREATED) {
        assert_limited(answer);
    }
    assert_eq!(clinics(&app).await, 3);
    other.close_instance().await;
    app.cleanup().await;
}

async fn server_of(app: &TestApp, clinic: &str) -> Uuid {
    sqlx::query_scalar("SELECT db_server_id FROM companies WHERE id = $1::uuid")
        .bind(clinic)
        .fetch_one(&app.state.databases.central)
        .await
        .unwrap()
}

/// The primary server is full: a new clinic goes to the next server with
/// room; once that one is full too, registration answers 503 `no_capacity`
/// with `Retry-After`, and leaves nothing behind.
#[tokio::test]
async fn a_full_server_takes_no_new_clinic() {
    let app = spawn_app_with(|_| {}).await;
    let central = &app.state.databases.central;
    sqlx::query("UPDATE db_servers SET max_clinics = 0 WHERE name = 'primary'")
        .execute(central)
        .await
        .unwrap();
    // A second entry for the same PostgreSQL server, as far as placement
    // is concerned another server.
    let next: Uuid = sqlx::query_scalar(
        "INSERT INTO db_servers (name, host, port, max_clinics)
         SELECT 'next', host, port, 1 FROM db_servers WHERE name = 'primary' RETURNING id",
    )
    .fetch_one(central)
    .await
    .unwrap();
    let placed = app.register_from([10, 4, 0, 1], "Placed").await;
    assert_eq!(placed.status, StatusCode::CREATED, "{}", placed.body);
    let id = placed.data()["clinic"]["id"].as_str().unwrap().to_owned();
    assert_eq!(server_of(&app, &id).await, next);

    let full = app.register_from([10, 4, 0, 2], "Full").await;
    assert_eq!(
        full.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        full.body
    );
    assert_eq!(full.code(), "no_capacity");
    assert_eq!(retry_after(&full), 3600);
    assert_eq!(clinics(&app).await, 1);
    let users: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(central)
        .await
        .unwrap();
    assert_eq!(users, 1);
    // A refusal the server caused is not counted against the address.
    let attempts: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM registration_attempts WHERE client_addr = '10.4.0.2'",
    )
    .fetch_one(central)
    .await
    .unwrap();
    assert_eq!(attempts, 0);
    app.cleanup().await;
}

/// Six registrations at once for a server with two places left: two
/// clinics are made, the other four get 503 `no_capacity`.
#[tokio::test]
async fn concurrent_registrations_cannot_overfill_a_server() {
    let app = spawn_app_with(|_| {}).await;
    sqlx::query("UPDATE db_servers SET max_clinics = 2")
        .execute(&app.state.databases.central)
        .await
        .unwrap();
    let answers = join_all((0..6u8).map(|i| app.register_from([10, 5, 0, i + 1], "Rush"))).await;
    let mut by_status = std::collections::BTreeMap::new();
    for answer in &answers {
        *by_status.entry(answer.status.as_u16()).or_insert(0) += 1;
        if answer.status != StatusCode::CREATED {
            assert_eq!(answer.code(), "no_capacity", "{}", answer.body);
        }
    }
    assert_eq!(by_status.get(&201), Some(&2), "{by_status:?}");
    assert_eq!(by_status.get(&503), Some(&4), "{by_status:?}");
    assert_eq!(clinics(&app).await, 2);
    app.cleanup().await;
}
