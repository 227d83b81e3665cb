//! `/metrics` (route templates, never raw ids) and the bounded graceful
//! shutdown of the server.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use axum::http::{header, Method, StatusCode};
use medicalpro::app::serve_until;
use medicalpro::crypto::BearerToken;
use uuid::Uuid;

use crate::helpers::{spawn_app, spawn_app_with};

#[tokio::test]
async fn metrics_count_requests_by_route_template_and_never_by_id() {
    let app = spawn_app().await;
    let a = app.register_clinic("Clinic A").await;
    let b = app.register_clinic("Clinic B").await;
    let patient = app.create_patient(&a.token, "Marie", "Curie").await;
    let read = format!("/api/v1/patients/{patient}");
    assert_eq!(app.get(&read, &a.token).await.status, StatusCode::OK);
    assert_eq!(app.get(&read, &b.token).await.status, StatusCode::NOT_FOUND);
    let stranger = Uuid::new_v4();
    app.get(&format!("/api/v1/nothing/{stranger}"), &a.token)
        .await;
    let refused = app.login(&a.email, "not the password").await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);

    let scraped = app.call(Method::GET, "/metrics", None, None).await;
    assert_eq!(scraped.status, StatusCode::OK);
    assert!(scraped.headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let text = scraped.body.as_str().expect("text body");
    let template = r#"route="/api/v1/patients/{id}""#;
    assert!(
        text.contains(&format!(
            r#"medicalpro_http_requests_total{{method="GET",{template},status="200"}} 1"#
        )),
        "{text}"
    );
    assert!(text.contains(&format!(
        r#"medicalpro_http_requests_total{{method="GET",{template},status="404"}} 1"#
    )));
    assert!(text.contains(
        r#"medicalpro_http_requests_total{method="GET",route="unmatched",status="404"} 1"#
    ));
    assert!(text.contains(&format!(
        r#"medicalpro_http_request_duration_seconds_bucket{{method="GET",{template},status="200",le="+Inf"}} 1"#
    )));
    assert!(text.contains(r#"medicalpro_login_failures_total{reason="invalid_credentials"} 1"#));
    assert!(text.contains("medicalpro_clinic_provisioning_seconds_count 2"));
    assert!(text.contains("medicalpro_clinic_pools_open 2"), "{text}");
    for id in [
        patient,
        a.id.to_string(),
        b.id.to_string(),
        stranger.to_string(),
    ] {
        assert!(!text.contains(&id), "{id} leaked into /metrics");
    }
    assert!(!text.contains(&a.email));
    app.cleanup().await;
}

#[tokio::test]
async fn metrics_token_when_set_is_required_as_a_bearer_token() {
    let open = spawn_app().await;
    let scraped = open.call(Method::GET, "/metrics", None, None).await;
    assert_eq!(scraped.status, StatusCode::OK, "unset: open as before");
    open.cleanup().await;

    let secret = "scrape me with this, and only this";
    let app = spawn_app_with(|settings| {
        settings.metrics_token =
            Some(BearerToken::parse(secret, "METRICS_TOKEN").expect("a long enough token"));
    })
    .await;
    let none = app.call(Method::GET, "/metrics", None, None).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert_eq!(none.code(), "unauthorized");
    for wrong in [
        "scrape me with this, and only thiS",
        "",
        secret.split_at(10).0,
    ] {
        let refused = app.get("/metrics", wrong).await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{wrong:?}");
    }
    let basic = app
        .send(
            axum::http::Request::builder()
                .uri("/metrics")
                .header(header::AUTHORIZATION, format!("Basic {secret}"))
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(basic.status, StatusCode::UNAUTHORIZED);
    let scraped = app.get("/metrics", secret).await;
    assert_eq!(scraped.status, StatusCode::OK);
    let text = scraped.body.as_str().expect("text body");
    assert!(text.contains("medicalpro_http_requests_total"), "{text}");
    app.cleanup().await;
}

#[tokio::test]
async fn a_stop_drains_requests_in_flight_for_a_bounded_time() {
    let app = spawn_app().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let drain = Duration::from_secs(2);
    let server = tokio::spawn(serve_until(
        listener,
        app.state.clone(),
        async move {
            let _ = stop_rx.await;
        },
        drain,
    ));

    let health = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer
    })
    .await
    .unwrap();
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");

    // A request whose body never finishes arriving stays in flight.
    let mut slow = TcpStream::connect(("127.0.0.1", port)).unwrap();
    slow.write_all(
        b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"email\":",
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stopped_at = Instant::now();
    stop_tx.send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "no new connection is accepted once stopping"
    );
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("the server stops within the drain bound")
        .unwrap()
        .unwrap();
    let took = stopped_at.elapsed();
    assert!(
        took >= drain && took < drain + Duration::from_secs(3),
        "{took:?}"
    );
    drop(slow);
    app.cleanup().await;
}
