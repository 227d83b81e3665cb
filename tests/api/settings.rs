use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::helpers::spawn_app;
use crate::users::staff;

#[tokio::test]
async fn every_role_reads_its_own_clinic_and_its_settings() {
    let app = spawn_app().await;
    let a = app.register_clinic("Cabinet Alpha").await;
    let b = app.register_clinic("Cabinet Beta").await;
    let readonly = staff(&app, &a.token, "readonly").await;
    for token in [&a.token, &readonly.token] {
        let clinic = app.get("/api/v1/clinic", token).await;
        assert_eq!(clinic.status, StatusCode::OK, "{}", clinic.body);
        let data = clinic.data();
        assert_eq!(data["id"], a.id.to_string());
        assert_eq!(data["name"], "Cabinet Alpha");
        assert_eq!(data["email"], a.email);
        assert_eq!(data["country"], "FR");
        assert_eq!(data["status"], "active");
        assert_eq!(
            (
                &data["settings"]["timezone"],
                &data["settings"]["currency"],
                &data["settings"]["locale"]
            ),
            (&json!("Europe/Paris"), &json!("EUR"), &json!("fr-FR"))
        );
        assert!(data["createdAt"].is_string());
    }
    let other = app.get("/api/v1/clinic", &b.token).await;
    assert_eq!(other.data()["id"], b.id.to_string());
    assert_eq!(other.data()["name"], "Cabinet Beta");
    app.cleanup().await;
}

#[tokio::test]
async fn an_admin_changes_the_settings_of_their_clinic_only() {
    let app = spawn_app().await;
    let a = app.register_clinic("Alpha").await;
    let b = app.register_clinic("Beta").await;
    let changed = app
        .patch(
            "/api/v1/clinic/settings",
            &a.token,
            json!({"timezone": "america/new_york", "currency": "usd", "locale": "en_us"}),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    let settings = &changed.data()["settings"];
    assert_eq!(settings["timezone"], "America/New_York");
    assert_eq!(settings["currency"], "USD");
    assert_eq!(settings["locale"], "en-US");
    // Absent fields are kept.
    let partial = app
        .patch("/api/v1/clinic/settings", &a.token, json!({"locale": "en"}))
        .await;
    assert_eq!(partial.data()["settings"]["timezone"], "America/New_York");
    assert_eq!(partial.data()["settings"]["locale"], "en");
    let read = app.get("/api/v1/clinic", &a.token).await;
    assert_eq!(read.data()["settings"]["currency"], "USD");
    assert_eq!(read.data()["settings"]["locale"], "en");
    let untouched = app.get("/api/v1/clinic", &b.token).await;
    assert_eq!(untouched.data()["settings"]["timezone"], "Europe/Paris");
    assert_eq!(untouched.data()["settings"]["currency"], "EUR");
    app.cleanup().await;
}

#[tokio::test]
async fn settings_requests_name_each_invalid_field() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Validation").await;
    let refused = app
        .patch(
            "/api/v1/clinic/settings",
            &clinic.token,
            json!({"timezone": "Mars/Olympus_Mons", "currency": "EURO", "locale": "french"}),
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(refused.code(), "validation_failed");
    assert_eq!(refused.detail_fields(), ["timezone", "currency", "locale"]);
    for body in [
        json!({"timezone": null}),
        json!({"timezone": ""}),
        json!({"timezone": "CET'; DROP TABLE clinic_settings; --"}),
        json!({"currency": "E1R"}),
        json!({"locale": "fr-FRA"}),
        json!({"name": "Renamed"}),
    ] {
        let response = app
            .patch("/api/v1/clinic/settings", &clinic.token, body.clone())
            .await;
        assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    }
    let kept = app.get("/api/v1/clinic", &clinic.token).await;
    assert_eq!(kept.data()["settings"]["timezone"], "Europe/Paris");
    app.cleanup().await;
}

#[tokio::test]
async fn only_admins_change_the_settings() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Roles").await;
    for role in ["doctor", "secretary", "readonly"] {
        let member = staff(&app, &clinic.token, role).await;
        assert_eq!(
            app.get("/api/v1/clinic", &member.token).await.status,
            StatusCode::OK
        );
        for method in [Method::PATCH, Method::PUT] {
            let response = app
                .call(
                    method.clone(),
                    "/api/v1/clinic/settings",
                    Some(&member.token),
                    Some(json!({"currency": "CHF"})),
                )
                .await;
            assert_eq!(
                (response.status, response.code()),
                (StatusCode::FORBIDDEN, "forbidden"),
                "{role} {method}"
            );
        }
    }
    let unchanged = app.get("/api/v1/clinic", &clinic.token).await;
    assert_eq!(unchanged.data()["settings"]["currency"], "EUR");
    app.cleanup().await;
}

#[tokio::test]
async fn the_clinic_keeps_what_its_invoices_say_of_it_and_clears_it_on_null() {
    let app = spawn_app().await;
    let a = app.register_clinic("Legal Alpha").await;
    let b = app.register_clinic("Legal Beta").await;
    let fresh = app.get("/api/v1/clinic", &a.token).await;
    assert_eq!(fresh.data()["settings"]["siret"], json!(null));
    assert_eq!(fresh.data()["settings"]["address"]["city"], json!(null));
    let changed = app
        .patch(
            "/api/v1/clinic/settings",
            &a.token,
            json!({
                "address": {"line1": " 12 rue Pasteur ", "postalCode": "75015", "city": "Paris", "country": "fr"},
                "siret": "732 829 320 00074",
                "vatNumber": "fr40 303265045",
            }),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    let read = app.get("/api/v1/clinic", &a.token).await;
    let settings = &read.data()["settings"];
    assert_eq!(settings["address"]["line1"], "12 rue Pasteur");
    assert_eq!(settings["address"]["postalCode"], "75015");
    assert_eq!(settings["address"]["country"], "FR");
    assert_eq!(settings["siret"], "73282932000074");
    assert_eq!(settings["vatNumber"], "FR40303265045");
    assert_eq!(settings["timezone"], "Europe/Paris");
    let other = app.get("/api/v1/clinic", &b.token).await;
    assert_eq!(other.data()["settings"]["siret"], json!(null));

    let refused = app
        .patch(
            "/api/v1/clinic/settings",
            &a.token,
            json!({
                "address": {"line1": "x".repeat(201), "country": "France"},
                "siret": "73282932000075",
                "vatNumber": "FR41303265045",
            }),
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        refused.detail_fields(),
        ["address.line1", "address.country", "siret", "vatNumber"]
    );
    for body in [
        json!({"address": ["12 rue Pasteur"]}),
        json!({"address": {"street": "12 rue Pasteur"}}),
        json!({"siret": 73282932000074_i64}),
    ] {
        let response = app
            .patch("/api/v1/clinic/settings", &a.token, body.clone())
            .await;
        assert!(
            response.status.is_client_error(),
            "{body}: {}",
            response.status
        );
        assert_ne!(response.status, StatusCode::INTERNAL_SERVER_ERROR);
    }

    let cleared = app
        .patch(
            "/api/v1/clinic/settings",
            &a.token,
            json!({"address": null, "siret": null, "vatNumber": null}),
        )
        .await;
    assert_eq!(cleared.status, StatusCode::OK, "{}", cleared.body);
    let settings = &cleared.data()["settings"];
    assert_eq!(settings["address"]["line1"], json!(null));
    assert_eq!(settings["siret"], json!(null));
    assert_eq!(settings["vatNumber"], json!(null));
    app.cleanup().await;
}
