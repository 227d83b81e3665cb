//! The client address behind a load balancer: `X-Forwarded-For` is believed
//! only from a trusted proxy, and only its rightmost untrusted hop.

use axum::http::{Method, StatusCode};
use medicalpro::central::login_failures::MAX_PER_ADDRESS;
use medicalpro::http::proxies::TrustedProxies;
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{spawn_app, unique_email, TestApp, TestClinic, TestResponse};

const BALANCER: [u8; 4] = [10, 0, 0, 1];

/// A login from the TCP peer `peer` claiming `forwarded_for`.
async fn login(
    app: &TestApp,
    peer: [u8; 4],
    forwarded_for: &str,
    email: &str,
    password: &str,
) -> TestResponse {
    app.call_from(
        peer,
        &[("x-forwarded-for", forwarded_for.as_bytes())],
        Method::POST,
        "/api/v1/auth/login",
        None,
        Some(json!({"email": email, "password": password})),
    )
    .await
}

/// Creates a patient from `peer` claiming `forwarded_for`; the client
/// address its audit event recorded.
async fn audited_client_addr(
    app: &TestApp,
    clinic: &TestClinic,
    peer: [u8; 4],
    forwarded_for: &str,
) -> Option<String> {
    let created = app
        .call_from(
            peer,
            &[("x-forwarded-for", forwarded_for.as_bytes())],
            Method::POST,
            "/api/v1/patients",
            Some(&clinic.token),
            Some(json!({"firstName": "Ada", "lastName": "Proxy"})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id: Uuid = created.id().parse().unwrap();
    let mut trail = app.audit_trail(clinic.id).await;
    sqlx::query_scalar(
        "SELECT client_addr FROM audit_events WHERE action = 'create' AND resource_id = $1",
    )
    .bind(id)
    .fetch_one(&mut trail)
    .await
    .unwrap()
}

/// Addresses the central login failures recorded for `email`.
async fn failure_addrs(app: &TestApp, email: &str) -> Vec<String> {
    sqlx::query_scalar("SELECT DISTINCT client_addr FROM login_failures WHERE email = lower($1)")
        .bind(email)
        .fetch_all(&app.state.databases.central)
        .await
        .unwrap()
}

/// Without trusted proxies a client cannot escape its address's throttling,
/// nor write another address into the trail, by claiming to be forwarded.
#[tokio::test]
async fn without_trusted_proxies_a_forwarded_for_header_is_ignored() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("No proxy").await;
    let attacker = [192, 0, 2, 7];
    let first = unique_email();
    for i in 0..MAX_PER_ADDRESS {
        let email = if i == 0 {
            first.clone()
        } else {
            unique_email()
        };
        let guess = login(&app, attacker, &format!("198.51.100.{i}"), &email, "x").await;
        assert_eq!(guess.status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(failure_addrs(&app, &first).await, ["192.0.2.7"]);
    let spoofed = login(
        &app,
        attacker,
        "198.51.100.200",
        &clinic.email,
        &clinic.password,
    )
    .await;
    assert_eq!(spoofed.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        audited_client_addr(&app, &clinic, attacker, "198.51.100.9").await,
        Some("192.0.2.7".to_owned())
    );
    app.cleanup().await;
}

/// Behind a trusted balancer: two clients are throttled apart, the trail
/// names the forwarded client, and a hop the client wrote itself is not
/// believed.
#[tokio::test]
async fn behind_a_trusted_balancer_each_client_has_its_own_address() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Balanced").await;
    let balanced = app
        .instance_with(|settings| {
            settings.serving.trusted_proxies = TrustedProxies::parse("10.0.0.0/8").unwrap();
        })
        .await;
    let noisy = "203.0.113.5";
    for _ in 0..MAX_PER_ADDRESS {
        let guess = login(&balanced, BALANCER, noisy, &unique_email(), "x").await;
        assert_eq!(guess.status, StatusCode::UNAUTHORIZED);
    }
    let blocked = login(&balanced, BALANCER, noisy, &clinic.email, &clinic.password).await;
    assert_eq!(blocked.status, StatusCode::TOO_MANY_REQUESTS);
    // The noisy client forging a leftmost hop is still itself.
    let forged = login(
        &balanced,
        BALANCER,
        &format!("203.0.113.6, {noisy}"),
        &clinic.email,
        &clinic.password,
    )
    .await;
    assert_eq!(forged.status, StatusCode::TOO_MANY_REQUESTS);
    // Another client behind the same balancer is not blocked.
    let neighbour = login(
        &balanced,
        BALANCER,
        "203.0.113.6",
        &clinic.email,
        &clinic.password,
    )
    .await;
    assert_eq!(neighbour.status, StatusCode::OK, "{}", neighbour.body);
    let email = unique_email();
    login(
        &balanced,
        BALANCER,
        "198.51.100.1, 203.0.113.8",
        &email,
        "x",
    )
    .await;
    assert_eq!(failure_addrs(&balanced, &email).await, ["203.0.113.8"]);
    // Through a second trusted proxy, the client is the first untrusted hop.
    assert_eq!(
        audited_client_addr(
            &balanced,
            &clinic,
            BALANCER,
            "198.51.100.9, 203.0.113.7, 10.0.0.2"
        )
        .await,
        Some("203.0.113.7".to_owned())
    );
    // A peer outside the trusted blocks is not believed.
    assert_eq!(
        audited_client_addr(&balanced, &clinic, [192, 0, 2, 50], "203.0.113.7").await,
        Some("192.0.2.50".to_owned())
    );
    balanced.close_instance().await;
    app.cleanup().await;
}
