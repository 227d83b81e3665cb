//! Consent templates kept as versions, and patients' consents on them: a
//! signed consent keeps the text that was signed, the status only moves
//! forward, ids of another clinic are refused, every access is audited.

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::appointments::audit_count;
use crate::helpers::{spawn_app, TestApp, TestClinic};
use crate::medical_records::staff;

async fn template(app: &TestApp, clinic: &TestClinic, title: &str, body: &str) -> String {
    let response = app
        .post(
            "/api/v1/consent-templates",
            &clinic.token,
            json!({"title": title, "body": body}),
        )
        .await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.body);
    response.id()
}

async fn consent(app: &TestApp, clinic: &TestClinic, patient: &str, template: &str) -> String {
    let response = app
        .post(
            "/api/v1/consents",
            &clinic.token,
            json!({"patientId": patient, "templateId": template}),
        )
        .await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.body);
    response.id()
}

async fn set_status(
    app: &TestApp,
    clinic: &TestClinic,
    id: &str,
    status: &str,
) -> crate::helpers::TestResponse {
    app.patch(
        &format!("/api/v1/consents/{id}"),
        &clinic.token,
        json!({"status": status}),
    )
    .await
}

#[tokio::test]
async fn editing_a_signed_template_makes_a_new_version_and_keeps_the_signed_text() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Versions").await;
    let token = &clinic.token;
    let patient = app.create_patient(token, "Ada", "Lovelace").await;
    let v1 = template(&app, &clinic, "Surgery", "I agree to the operation.").await;
    let v1_path = format!("/api/v1/consent-templates/{v1}");
    let read = app.get(&v1_path, token).await;
    assert_eq!(read.data()["version"], 1);
    assert_eq!(read.data()["isCurrent"], true);

    // Nobody signed yet: edits are in place, pending consents follow.
    let edited = app
        .patch(&v1_path, token, json!({"body": "I agree to the surgery."}))
        .await;
    assert_eq!(edited.status, StatusCode::OK, "{}", edited.body);
    assert_eq!(
        (edited.id(), edited.data()["version"].as_i64()),
        (v1.clone(), Some(1))
    );
    let pending = consent(&app, &clinic, &patient, &v1).await;
    let still_in_place = app
        .patch(&v1_path, token, json!({"title": "Surgery consent"}))
        .await;
    assert_eq!(still_in_place.status, StatusCode::OK);
    assert_eq!(still_in_place.id(), v1);

    // Once signed, an edit makes version 2, which becomes current.
    let signed = set_status(&app, &clinic, &pending, "signed").await;
    assert_eq!(signed.status, StatusCode::OK);
    let v2_response = app
        .call(
            Method::PUT,
            &v1_path,
            Some(token),
            Some(json!({"body": "I agree to the surgery and anaesthesia."})),
        )
        .await;
    assert_eq!(
        v2_response.status,
        StatusCode::CREATED,
        "{}",
        v2_response.body
    );
    let v2 = v2_response.id();
    assert_ne!(v2, v1);
    let data = v2_response.data();
    assert_eq!(
        (data["version"].as_i64(), data["isCurrent"].as_bool()),
        (Some(2), Some(true))
    );
    assert_eq!(data["familyId"], read.data()["familyId"]);
    assert_eq!(data["title"], "Surgery consent");

    let old = app.get(&v1_path, token).await;
    assert_eq!(old.status, StatusCode::OK, "earlier versions stay readable");
    assert_eq!(old.data()["isCurrent"], false);
    assert_eq!(old.data()["body"], "I agree to the surgery.");
    let signed_consent = app.get(&format!("/api/v1/consents/{pending}"), token).await;
    assert_eq!(signed_consent.data()["templateId"], v1.as_str());
    assert_eq!(signed_consent.data()["template"]["version"], 1);
    assert_eq!(
        signed_consent.data()["template"]["body"],
        "I agree to the surgery."
    );

    let list = app.get("/api/v1/consent-templates", token).await;
    assert_eq!(
        list.body["pagination"]["total"], 1,
        "lists show current versions"
    );
    assert_eq!(list.data()[0]["id"], v2.as_str());

    // Earlier versions are neither edited, deleted, nor given new consents.
    let stale = app.patch(&v1_path, token, json!({"title": "x"})).await;
    assert_eq!(
        (stale.status, stale.code()),
        (StatusCode::CONFLICT, "conflict")
    );
    assert_eq!(
        app.delete(&v1_path, token).await.status,
        StatusCode::CONFLICT
    );
    let on_old = app
        .post(
            "/api/v1/consents",
            token,
            json!({"patientId": patient, "templateId": v1}),
        )
        .await;
    assert_eq!(on_old.detail_fields(), ["templateId"]);
    let on_new = consent(&app, &clinic, &patient, &v2).await;

    // A revoked consent still counts as signed: version 3 on the next edit.
    set_status(&app, &clinic, &on_new, "signed").await;
    set_status(&app, &clinic, &on_new, "revoked").await;
    let v2_path = format!("/api/v1/consent-templates/{v2}");
    let unchanged = app
        .patch(&v2_path, token, json!({"title": "Surgery consent"}))
        .await;
    assert_eq!(
        (unchanged.status, unchanged.id()),
        (StatusCode::OK, v2.clone()),
        "no change, no version"
    );
    let v3 = app
        .patch(&v2_path, token, json!({"title": "Surgery"}))
        .await;
    assert_eq!(v3.status, StatusCode::CREATED);
    assert_eq!(v3.data()["version"], 3);

    // Deleting removes the current version; earlier ones stay readable.
    let v3_path = format!("/api/v1/consent-templates/{}", v3.id());
    assert_eq!(
        app.delete(&v3_path, token).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(app.get(&v3_path, token).await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.get(&v2_path, token).await.status, StatusCode::OK);
    let list = app.get("/api/v1/consent-templates", token).await;
    assert_eq!(list.body["pagination"]["total"], 0);
    let after = app.get(&format!("/api/v1/consents/{on_new}"), token).await;
    assert_eq!(after.data()["template"]["version"], 2);

    let version = app
        .post(
            "/api/v1/consent-templates",
            token,
            json!({"title": "T", "body": "B", "version": 7}),
        )
        .await;
    assert_eq!(version.detail_fields(), ["version"]);
    let missing = app
        .post("/api/v1/consent-templates", token, json!({"title": " "}))
        .await;
    assert_eq!(missing.detail_fields(), ["title", "body"]);
    for (action, resource) in [
        ("create", "consent_template"),
        ("read", "consent_template"),
        ("update", "consent_template"),
        ("list", "consent_template"),
        ("delete", "consent_template"),
    ] {
        assert!(
            audit_count(&app, &clinic, action, resource).await >= 1,
            "{action} {resource}"
        );
    }
    app.cleanup().await;
}

#[tokio::test]
async fn consent_status_moves_forward_with_server_timestamps() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Workflow").await;
    let token = &clinic.token;
    let patient = app.create_patient(token, "Ada", "Lovelace").await;
    let form = template(&app, &clinic, "Photos", "You may take photos.").await;
    let id = consent(&app, &clinic, &patient, &form).await;
    let path = format!("/api/v1/consents/{id}");
    let created = app.get(&path, token).await;
    assert_eq!(created.data()["status"], "pending");
    assert!(created.data()["signedAt"].is_null() && created.data()["revokedAt"].is_null());

    let early_revoke = set_status(&app, &clinic, &id, "revoked").await;
    assert_eq!(
        (early_revoke.status, early_revoke.code()),
        (StatusCode::CONFLICT, "conflict")
    );
    let signed = set_status(&app, &clinic, &id, "signed").await;
    assert_eq!(signed.status, StatusCode::OK, "{}", signed.body);
    let signed_at = signed.data()["signedAt"].as_str().unwrap().to_owned();
    assert!(signed.data()["revokedAt"].is_null());
    let again = set_status(&app, &clinic, &id, "signed").await;
    assert_eq!(
        again.data()["signedAt"],
        signed_at.as_str(),
        "signing twice keeps the first time"
    );
    assert_eq!(
        set_status(&app, &clinic, &id, "pending").await.status,
        StatusCode::CONFLICT
    );
    let other_form = template(&app, &clinic, "Video", "You may film.").await;
    let retarget = app
        .patch(&path, token, json!({"templateId": other_form}))
        .await;
    assert_eq!(retarget.status, StatusCode::CONFLICT);
    assert_eq!(
        app.delete(&path, token).await.status,
        StatusCode::CONFLICT,
        "signed is evidence"
    );

    let revoked = set_status(&app, &clinic, &id, "revoked").await;
    assert_eq!(revoked.status, StatusCode::OK);
    assert_eq!(revoked.data()["signedAt"], signed_at.as_str());
    assert!(revoked.data()["revokedAt"].is_string());
    for status in ["signed", "pending"] {
        let refused = set_status(&app, &clinic, &id, status).await;
        assert_eq!(refused.status, StatusCode::CONFLICT, "revoked -> {status}");
    }
    let bad = set_status(&app, &clinic, &id, "maybe").await;
    assert_eq!(bad.detail_fields(), ["status"]);

    // A pending consent may move to another current template, and be deleted.
    let second = consent(&app, &clinic, &patient, &form).await;
    let second_path = format!("/api/v1/consents/{second}");
    let moved = app
        .patch(&second_path, token, json!({"templateId": other_form}))
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{}", moved.body);
    assert_eq!(moved.data()["template"]["title"], "Video");
    let timestamps = app
        .patch(
            &second_path,
            token,
            json!({"signedAt": "2020-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(
        timestamps.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "timestamps are the server's"
    );
    assert_eq!(
        app.delete(&second_path, token).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.get(&second_path, token).await.status,
        StatusCode::NOT_FOUND
    );

    // Recording a consent already given; a new one is never revoked.
    let given = app
        .post(
            "/api/v1/consents",
            token,
            json!({"patientId": patient, "templateId": form, "status": "signed"}),
        )
        .await;
    assert_eq!(given.status, StatusCode::CREATED);
    assert!(given.data()["signedAt"].is_string());
    let revoked_new = app
        .post(
            "/api/v1/consents",
            token,
            json!({"patientId": patient, "templateId": form, "status": "revoked"}),
        )
        .await;
    assert_eq!(revoked_new.detail_fields(), ["status"]);

    // A pending consent whose template was deleted is not signed any more.
    let withdrawn = template(&app, &clinic, "Withdrawn", "Soon gone.").await;
    let orphan = consent(&app, &clinic, &patient, &withdrawn).await;
    app.delete(&format!("/api/v1/consent-templates/{withdrawn}"), token)
        .await;
    assert_eq!(
        set_status(&app, &clinic, &orphan, "signed").await.status,
        StatusCode::CONFLICT
    );
    let orphan_read = app.get(&format!("/api/v1/consents/{orphan}"), token).await;
    assert_eq!(orphan_read.data()["template"]["body"], "Soon gone.");

    let list = app
        .get(&format!("/api/v1/consents?patientId={patient}"), token)
        .await;
    assert_eq!(list.body["pagination"]["total"], 3);
    for action in ["create", "read", "update", "list", "delete"] {
        assert!(
            audit_count(&app, &clinic, action, "consent").await >= 1,
            "{action}"
        );
    }
    let mut conn = app.audit_trail(clinic.id).await;
    let (patient_id, details): (Option<Uuid>, Value) = sqlx::query_as(
        "SELECT patient_id, details FROM audit_events WHERE action = 'list' AND resource_type = 'consent'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(patient_id.map(|p| p.to_string()), Some(patient.clone()));
    assert_eq!(details["patientId"], patient.as_str());
    app.cleanup().await;
}

#[tokio::test]
async fn consents_refuse_other_clinics_ids_and_stay_in_their_clinic() {
    let app = spawn_app().await;
    let a = app.register_clinic("Clinic A").await;
    let b = app.register_clinic("Clinic B").await;
    let patient = app.create_patient(&a.token, "Ada", "Lovelace").await;
    let a_form = template(&app, &a, "Form", "Text").await;
    let b_patient = app.create_patient(&b.token, "Bob", "Other").await;
    let b_form = template(&app, &b, "Form", "Text").await;
    let gone = app.create_patient(&a.token, "Gone", "Away").await;
    app.delete(&format!("/api/v1/patients/{gone}"), &a.token)
        .await;
    let deleted_form = template(&app, &a, "Deleted", "Text").await;
    app.delete(
        &format!("/api/v1/consent-templates/{deleted_form}"),
        &a.token,
    )
    .await;
    let post = |body: Value| app.post("/api/v1/consents", &a.token, body);

    assert_eq!(
        post(json!({})).await.detail_fields(),
        ["patientId", "templateId"]
    );
    for (body, fields) in [
        (
            json!({"patientId": b_patient, "templateId": a_form}),
            vec!["patientId"],
        ),
        (
            json!({"patientId": gone, "templateId": a_form}),
            vec!["patientId"],
        ),
        (
            json!({"patientId": patient, "templateId": b_form}),
            vec!["templateId"],
        ),
        (
            json!({"patientId": patient, "templateId": deleted_form}),
            vec!["templateId"],
        ),
        (
            json!({"patientId": patient, "templateId": Uuid::new_v4()}),
            vec!["templateId"],
        ),
        (
            json!({"patientId": b_patient, "templateId": b_form}),
            vec!["patientId", "templateId"],
        ),
        (
            json!({"patientId": "x", "templateId": a_form}),
            vec!["patientId"],
        ),
    ] {
        let refused = post(body.clone()).await;
        assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(refused.detail_fields(), fields, "{body}");
    }
    let id = consent(&app, &a, &patient, &a_form).await;
    let path = format!("/api/v1/consents/{id}");
    let retarget = app
        .patch(&path, &a.token, json!({"templateId": b_form}))
        .await;
    assert_eq!(retarget.detail_fields(), ["templateId"]);
    let other_patient = app
        .patch(&path, &a.token, json!({"patientId": b_patient}))
        .await;
    assert_eq!(other_patient.detail_fields(), ["patientId"]);

    // B's token: A's consent and template are not found.
    assert_eq!(app.get(&path, &b.token).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        set_status(&app, &b, &id, "signed").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.delete(&path, &b.token).await.status,
        StatusCode::NOT_FOUND
    );
    let a_form_path = format!("/api/v1/consent-templates/{a_form}");
    assert_eq!(
        app.get(&a_form_path, &b.token).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.patch(&a_form_path, &b.token, json!({"title": "x"}))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.delete(&a_form_path, &b.token).await.status,
        StatusCode::NOT_FOUND
    );
    let listed = app.get("/api/v1/consents", &b.token).await;
    assert_eq!(listed.body["pagination"]["total"], 0);
    let templates = app
        .get("/api/v1/consent-templates?search=form", &b.token)
        .await;
    assert_eq!(templates.body["pagination"]["total"], 1);
    assert_eq!(app.get(&path, &a.token).await.data()["status"], "pending");
    for bad in ["patientId=1", "limit=500", "status=signed"] {
        let response = app.get(&format!("/api/v1/consents?{bad}"), &a.token).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{bad}");
    }
    app.cleanup().await;
}

#[tokio::test]
async fn roles_follow_the_table_for_consents_and_templates() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Roles").await;
    let patient = app.create_patient(&clinic.token, "Ada", "Lovelace").await;
    let form = template(&app, &clinic, "Form", "Text").await;
    let form_path = format!("/api/v1/consent-templates/{form}");
    let id = consent(&app, &clinic, &patient, &form).await;
    let readonly = staff(&app, &clinic, "readonly").await;
    let secretary = staff(&app, &clinic, "secretary").await;
    let doctor = staff(&app, &clinic, "doctor").await;

    assert_eq!(
        app.get(&format!("/api/v1/consents/{id}"), &readonly)
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        set_status(&app, &clinic, &id, "signed").await.status,
        StatusCode::OK
    );
    let refused = app
        .patch(
            &format!("/api/v1/consents/{id}"),
            &readonly,
            json!({"status": "revoked"}),
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let by_secretary = app
        .post(
            "/api/v1/consents",
            &secretary,
            json!({"patientId": patient, "templateId": form}),
        )
        .await;
    assert_eq!(by_secretary.status, StatusCode::CREATED);
    for token in [&readonly, &secretary, &doctor] {
        assert_eq!(app.get(&form_path, token).await.status, StatusCode::OK);
        assert_eq!(
            app.get("/api/v1/consent-templates", token).await.status,
            StatusCode::OK
        );
        let write = app.patch(&form_path, token, json!({"title": "x"})).await;
        assert_eq!(write.status, StatusCode::FORBIDDEN);
        let create = app
            .post(
                "/api/v1/consent-templates",
                token,
                json!({"title": "x", "body": "y"}),
            )
            .await;
        assert_eq!(create.status, StatusCode::FORBIDDEN);
    }
    // The template is untouched.
    assert_eq!(
        app.get(&form_path, &clinic.token).await.data()["title"],
        "Form"
    );
    app.cleanup().await;
}
