//! Medical records: admins and doctors only, one clinic's records invisible
//! to another, field checks, and an audit trail that names fields, never
//! their content.

use axum::http::{Method, StatusCode};
use serde_json::json;
use uuid::Uuid;

use crate::appointments::{audit_count, clinic_exec, practitioner};
use crate::helpers::{spawn_app, unique_email, TestApp, TestClinic};

/// A staff account of `clinic` with `role`, inserted in the central
/// database (its API lives elsewhere); returns its access token.
pub async fn staff(app: &TestApp, clinic: &TestClinic, role: &str) -> String {
    let email = unique_email();
    let password = "staff password 123";
    let hash = medicalpro::auth::password::hash(password.to_owned())
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO users (id, company_id, email, password_hash, first_name, last_name, role)
         VALUES ($1, $2, $3, $4, 'Staff', 'Member', $5)",
    )
    .bind(Uuid::new_v4())
    .bind(clinic.id)
    .bind(&email)
    .bind(hash)
    .bind(role)
    .execute(&app.state.databases.central)
    .await
    .unwrap();
    let login = app.login(&email, password).await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    login.data()["accessToken"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn medical_record_lifecycle_audits_field_names_only() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Records").await;
    let token = &clinic.token;
    let patient = app.create_patient(token, "Ada", "Lovelace").await;
    let doctor = practitioner(&app, &clinic, "House").await;
    let secret = "Secretum medicum 4242";
    let created = app
        .post(
            "/api/v1/medical-records",
            token,
            json!({"patientId": patient, "practitionerId": doctor, "recordType": "diagnosis",
                   "title": "Migraine", "content": secret, "recordedAt": "2020-02-01T08:15:00+01:00"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.id();
    assert_eq!(created.data()["recordType"], "diagnosis");
    assert_eq!(created.data()["recordedAt"], "2020-02-01T07:15:00Z");
    assert_eq!(created.data()["practitionerId"], doctor.as_str());

    let defaults = app
        .post(
            "/api/v1/medical-records",
            token,
            json!({"patientId": patient, "content": "note"}),
        )
        .await;
    assert_eq!(defaults.status, StatusCode::CREATED);
    assert_eq!(defaults.data()["recordType"], "note");
    assert!(defaults.data()["practitionerId"].is_null());
    assert!(defaults.data()["recordedAt"].is_string());

    let path = format!("/api/v1/medical-records/{id}");
    let read = app.get(&path, token).await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.data()["content"], secret);
    let patched = app
        .patch(
            &path,
            token,
            json!({"content": format!("{secret} updated"), "practitionerId": null}),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    assert!(patched.data()["practitionerId"].is_null());
    assert_eq!(patched.data()["title"], "Migraine");
    let put = app
        .call(
            Method::PUT,
            &path,
            Some(token),
            Some(json!({"recordType": "prescription"})),
        )
        .await;
    assert_eq!(put.status, StatusCode::OK);
    assert_eq!(put.data()["recordType"], "prescription");

    let list = app.get("/api/v1/medical-records", token).await;
    assert_eq!(list.body["pagination"]["total"], 2);
    assert_eq!(list.data()[0]["id"], defaults.id().as_str(), "newest first");

    assert_eq!(
        app.delete(&path, token).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(app.get(&path, token).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        app.patch(&path, token, json!({"title": "x"})).await.status,
        StatusCode::NOT_FOUND
    );
    let list = app.get("/api/v1/medical-records", token).await;
    assert_eq!(list.body["pagination"]["total"], 1);

    for (action, expected) in [
        ("create", 2),
        ("read", 1),
        ("update", 2),
        ("list", 2),
        ("delete", 1),
    ] {
        assert_eq!(
            audit_count(&app, &clinic, action, "medical_record").await,
            expected,
            "{action}"
        );
    }
    let mut conn = app.audit_trail(clinic.id).await;
    let fields: Vec<String> = sqlx::query_scalar(
        "SELECT changed_fields FROM audit_events WHERE action = 'update'
            AND resource_type = 'medical_record' ORDER BY id LIMIT 1",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(fields, ["practitionerId", "content"]);
    let leaks: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM audit_events WHERE details::text ILIKE '%Secretum%'
            OR array_to_string(changed_fields, ',') ILIKE '%Secretum%'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(leaks, 0, "record content in the audit trail");
    app.cleanup().await;
}

#[tokio::test]
async fn only_admins_and_doctors_reach_medical_records() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Roles").await;
    let patient = app.create_patient(&clinic.token, "Ada", "Lovelace").await;
    let record = app
        .post(
            "/api/v1/medical-records",
            &clinic.token,
            json!({"patientId": patient, "title": "Allergy"}),
        )
        .await
        .id();
    let doctor = staff(&app, &clinic, "doctor").await;
    let created = app
        .post(
            "/api/v1/medical-records",
            &doctor,
            json!({"patientId": patient, "recordType": "allergy", "title": "Penicillin"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(
        app.get(&format!("/api/v1/medical-records/{record}"), &doctor)
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        app.delete(
            &format!("/api/v1/medical-records/{}", created.id()),
            &doctor
        )
        .await
        .status,
        StatusCode::NO_CONTENT
    );
    for role in ["secretary", "readonly"] {
        let token = staff(&app, &clinic, role).await;
        let path = format!("/api/v1/medical-records/{record}");
        for response in [
            app.get("/api/v1/medical-records", &token).await,
            app.get(&path, &token).await,
            app.post(
                "/api/v1/medical-records",
                &token,
                json!({"patientId": patient, "title": "x"}),
            )
            .await,
            app.patch(&path, &token, json!({"title": "x"})).await,
            app.delete(&path, &token).await,
        ] {
            assert_eq!(
                (response.status, response.code()),
                (StatusCode::FORBIDDEN, "forbidden"),
                "{role}"
            );
        }
        // The same staff do reach patients.
        assert_eq!(
            app.get("/api/v1/patients", &token).await.status,
            StatusCode::OK
        );
    }
    let still = app
        .get(&format!("/api/v1/medical-records/{record}"), &clinic.token)
        .await;
    assert_eq!(still.data()["title"], "Allergy");
    app.cleanup().await;
}

#[tokio::test]
async fn records_check_their_fields_and_stay_in_their_clinic() {
    let app = spawn_app().await;
    let a = app.register_clinic("Clinic A").await;
    let b = app.register_clinic("Clinic B").await;
    let patient = app.create_patient(&a.token, "Ada", "Lovelace").await;
    let second = app.create_patient(&a.token, "Alan", "Turing").await;
    let b_patient = app.create_patient(&b.token, "Bob", "Other").await;
    let b_doctor = practitioner(&app, &b, "Elsewhere").await;
    let post = |body: serde_json::Value| app.post("/api/v1/medical-records", &a.token, body);

    let empty = post(json!({})).await;
    assert_eq!(empty.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(empty.detail_fields(), ["patientId", "content"]);
    let bad = post(
        json!({"patientId": patient, "recordType": "gossip", "title": "",
        "recordedAt": "01/02/2026"}),
    )
    .await;
    assert_eq!(bad.detail_fields(), ["recordType", "title", "recordedAt"]);
    let gone = app.create_patient(&a.token, "Gone", "Away").await;
    app.delete(&format!("/api/v1/patients/{gone}"), &a.token)
        .await;
    let removed = practitioner(&app, &a, "Removed").await;
    clinic_exec(
        &app,
        &a,
        "UPDATE practitioners SET deleted_at = now() WHERE id = $1",
        &removed,
    )
    .await;
    let retired = practitioner(&app, &a, "Retired").await;
    clinic_exec(
        &app,
        &a,
        "UPDATE practitioners SET is_active = false WHERE id = $1",
        &retired,
    )
    .await;
    for (body, field) in [
        (json!({"patientId": b_patient, "title": "x"}), "patientId"),
        (json!({"patientId": gone, "title": "x"}), "patientId"),
        (
            json!({"patientId": Uuid::new_v4(), "title": "x"}),
            "patientId",
        ),
        (
            json!({"patientId": patient, "practitionerId": b_doctor, "title": "x"}),
            "practitionerId",
        ),
        (
            json!({"patientId": patient, "practitionerId": removed, "title": "x"}),
            "practitionerId",
        ),
    ] {
        let refused = post(body).await;
        assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{field}");
        assert_eq!(refused.detail_fields(), [field]);
    }
    let by_retired =
        post(json!({"patientId": patient, "practitionerId": retired, "title": "old visit"})).await;
    assert_eq!(
        by_retired.status,
        StatusCode::CREATED,
        "a past practitioner may be named"
    );
    let record = by_retired.id();
    let path = format!("/api/v1/medical-records/{record}");
    let moved = app
        .patch(&path, &a.token, json!({"patientId": second}))
        .await;
    assert_eq!(moved.detail_fields(), ["patientId"]);
    let foreign = app
        .patch(&path, &a.token, json!({"practitionerId": b_doctor}))
        .await;
    assert_eq!(foreign.detail_fields(), ["practitionerId"]);
    let emptied = app.patch(&path, &a.token, json!({"title": null})).await;
    assert_eq!(emptied.detail_fields(), ["content"]);
    post(json!({"patientId": second, "content": "x"})).await;

    // Filtered by patient, paginated, bad parameters refused.
    let mine = app
        .get(
            &format!("/api/v1/medical-records?patientId={patient}"),
            &a.token,
        )
        .await;
    assert_eq!(mine.body["pagination"]["total"], 1);
    assert_eq!(mine.data()[0]["id"], record.as_str());
    let paged = app
        .get("/api/v1/medical-records?limit=1&offset=1", &a.token)
        .await;
    assert_eq!(
        paged.body["pagination"],
        json!({"total": 2, "limit": 1, "offset": 1})
    );
    for bad in ["patientId=nope", "limit=0", "offset=-1", "search=x"] {
        let response = app
            .get(&format!("/api/v1/medical-records?{bad}"), &a.token)
            .await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{bad}");
    }

    // B sees none of A's records, and cannot touch them.
    assert_eq!(app.get(&path, &b.token).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        app.patch(&path, &b.token, json!({"title": "x"}))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.delete(&path, &b.token).await.status,
        StatusCode::NOT_FOUND
    );
    let listed = app
        .get(
            &format!("/api/v1/medical-records?patientId={patient}"),
            &b.token,
        )
        .await;
    assert_eq!(listed.body["pagination"]["total"], 0);
    assert_eq!(app.get(&path, &a.token).await.data()["title"], "old visit");
    app.cleanup().await;
}
