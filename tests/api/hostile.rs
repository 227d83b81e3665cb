//! Hostile input never reaches PostgreSQL as an error: NUL characters (which
//! PostgreSQL text cannot hold) in query strings and JSON strings are
//! refused with 400 / 422 on every route, before any query runs.

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn a_nul_in_a_query_string_is_bad_request() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Query NUL").await;
    for path in [
        "/api/v1/patients?search=a%00b",
        "/api/v1/products-services?search=%00",
        "/api/v1/audit?action=read%00",
        "/api/v1/patients?sea%00rch=a",
    ] {
        let answer = app.get(path, &clinic.token).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{path}: {}",
            answer.body
        );
        assert_eq!(answer.code(), "bad_request");
    }
    // `%2500` is the text `%00`, not a NUL.
    let answer = app
        .get("/api/v1/patients?search=%2500", &clinic.token)
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    app.cleanup().await;
}

#[tokio::test]
async fn a_nul_in_a_json_string_is_refused_naming_the_field() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Body NUL").await;
    let answer = app
        .post(
            "/api/v1/patients",
            &clinic.token,
            json!({"firstName": "Ma\u{0}rie", "lastName": "Curie"}),
        )
        .await;
    assert_eq!(
        answer.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        answer.body
    );
    assert_eq!(answer.code(), "validation_failed");
    assert_eq!(answer.detail_fields(), ["firstName"]);

    let nested = app
        .post(
            "/api/v1/patients",
            &clinic.token,
            json!({"firstName": "Marie", "lastName": "Curie", "address": {"city": "\u{0}"}}),
        )
        .await;
    assert_eq!(
        nested.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        nested.body
    );
    assert_eq!(nested.detail_fields(), ["address.city"]);

    // Fields that never reach the database are refused the same way.
    let login = app.login(&clinic.email, "correct horse\u{0}battery").await;
    assert_eq!(
        login.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        login.body
    );
    assert_eq!(login.detail_fields(), ["password"]);

    // The text `\u0000` (an escaped backslash) is no NUL.
    let text = app
        .post(
            "/api/v1/patients",
            &clinic.token,
            json!({"firstName": "\\u0000", "lastName": "Curie"}),
        )
        .await;
    assert_eq!(text.status, StatusCode::CREATED, "{}", text.body);
    assert_eq!(text.data()["firstName"], "\\u0000");

    // Nothing was written by the refused requests.
    let list = app.get("/api/v1/patients", &clinic.token).await;
    assert_eq!(list.body["pagination"]["total"], 1);
    app.cleanup().await;
}

#[tokio::test]
async fn a_raw_nul_byte_in_a_body_is_bad_request() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Raw NUL").await;
    let request = Request::builder()
        .method(Method::POST)
        .uri("/api/v1/patients")
        .header(header::AUTHORIZATION, format!("Bearer {}", clinic.token))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(
            &b"{\"firstName\": \"a\0b\", \"lastName\": \"c\"}"[..],
        ))
        .unwrap();
    let answer = app.send(request).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.body);
    assert_eq!(answer.code(), "bad_request");
    app.cleanup().await;
}

#[tokio::test]
async fn a_whole_number_written_with_a_fraction_is_that_integer() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Whole numbers").await;
    let created = app
        .post(
            "/api/v1/products-services",
            &clinic.token,
            json!({"name": "Consultation", "unitPriceCents": 2500.0, "vatRate": 2e3}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.data()["unitPriceCents"], 2500);
    assert_eq!(created.data()["vatRate"], 2000);
    let fraction = app
        .post(
            "/api/v1/products-services",
            &clinic.token,
            json!({"name": "Half", "unitPriceCents": 2500.5}),
        )
        .await;
    assert_eq!(fraction.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(fraction.detail_fields(), ["unitPriceCents"]);
    app.cleanup().await;
}

#[tokio::test]
async fn an_array_where_an_object_belongs_is_refused() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Arrays").await;
    let settings = app
        .patch("/api/v1/clinic/settings", &clinic.token, json!([]))
        .await;
    assert_eq!(
        settings.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        settings.body
    );
    assert_eq!(settings.detail_fields(), ["body"]);
    let address = app
        .post(
            "/api/v1/patients",
            &clinic.token,
            json!({"firstName": "Marie", "lastName": "Curie", "address": ["1 rue Pierre"]}),
        )
        .await;
    assert_eq!(
        address.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        address.body
    );
    assert_eq!(address.detail_fields(), ["address"]);
    app.cleanup().await;
}
