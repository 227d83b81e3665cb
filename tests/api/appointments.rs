//! Appointments and their items: booking, the status workflow, the
//! database's no-overlap rule (also under concurrent bookings), prices
//! captured from the catalogue, isolation between clinics, the audit trail.

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{settings_for, spawn_app, TestApp, TestClinic};

/// A practitioner of `clinic`, inserted directly (its API lives elsewhere).
pub async fn practitioner(app: &TestApp, clinic: &TestClinic, last_name: &str) -> String {
    let mut conn = app.clinic_admin(clinic.id).await;
    let id: Uuid = sqlx::query_scalar(
        "INSERT INTO practitioners (first_name, last_name) VALUES ('Dr', $1) RETURNING id",
    )
    .bind(last_name)
    .fetch_one(&mut conn)
    .await
    .unwrap();
    id.to_string()
}

/// A catalogue service of `clinic`, inserted directly.
pub async fn product(
    app: &TestApp,
    clinic: &TestClinic,
    name: &str,
    cents: i64,
    vat: i32,
) -> String {
    let mut conn = app.clinic_admin(clinic.id).await;
    let id: Uuid = sqlx::query_scalar(
        "INSERT INTO products_services (name, unit_price_cents, vat_rate) VALUES ($1, $2, $3)
         RETURNING id",
    )
    .bind(name)
    .bind(cents)
    .bind(vat)
    .fetch_one(&mut conn)
    .await
    .unwrap();
    id.to_string()
}

/// Runs `sql` (with `$1` = `id`) in `clinic`'s database as the admin role.
pub async fn clinic_exec(app: &TestApp, clinic: &TestClinic, sql: &str, id: &str) {
    let mut conn = app.clinic_admin(clinic.id).await;
    sqlx::query(sql)
        .bind(Uuid::parse_str(id).unwrap())
        .execute(&mut conn)
        .await
        .unwrap();
}

/// How many audit events of `action` on `resource_type` the clinic holds.
pub async fn audit_count(
    app: &TestApp,
    clinic: &TestClinic,
    action: &str,
    resource_type: &str,
) -> i64 {
    let mut conn = app.audit_trail(clinic.id).await;
    sqlx::query_scalar("SELECT COUNT(*) FROM audit_events WHERE action = $1 AND resource_type = $2")
        .bind(action)
        .bind(resource_type)
        .fetch_one(&mut conn)
        .await
        .unwrap()
}

/// 2030-01-07 at `hh:mm` UTC.
fn at(time: &str) -> String {
    format!("2030-01-07T{time}:00Z")
}

fn booking(patient: &str, practitioner: &str, start: &str, end: &str) -> Value {
    json!({"patientId": patient, "practitionerId": practitioner, "startAt": at(start), "endAt": at(end)})
}

/// A clinic with one patient and one practitioner.
struct Setting {
    clinic: TestClinic,
    patient: String,
    practitioner: String,
}

async fn setting(app: &TestApp, name: &str) -> Setting {
    let clinic = app.register_clinic(name).await;
    let patient = app.create_patient(&clinic.token, "Jeanne", "Calment").await;
    let practitioner = practitioner(app, &clinic, "Laennec").await;
    Setting {
        clinic,
        patient,
        practitioner,
    }
}

async fn book(app: &TestApp, s: &Setting, start: &str, end: &str) -> String {
    let response = app
        .post(
            "/api/v1/appointments",
            &s.clinic.token,
            booking(&s.patient, &s.practitioner, start, end),
        )
        .await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.body);
    response.id()
}

#[tokio::test]
async fn appointment_lifecycle_is_audited() {
    let app = spawn_app().await;
    let s = setting(&app, "Lifecycle").await;
    let token = &s.clinic.token;
    let created = app
        .post(
            "/api/v1/appointments",
            token,
            json!({"patientId": s.patient, "practitionerId": s.practitioner,
                   "startAt": "2030-01-07T10:00:00+01:00", "endAt": at("09:30"), "reason": " Checkup "}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.id();
    let data = created.data();
    assert_eq!(data["startAt"], "2030-01-07T09:00:00Z");
    assert_eq!(data["status"], "scheduled");
    assert_eq!(data["reason"], "Checkup");
    assert_eq!(data["patientId"], s.patient.as_str());
    assert!(data["notes"].is_null() && data["createdAt"].is_string());

    let path = format!("/api/v1/appointments/{id}");
    let read = app.get(&path, token).await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.data()["practitionerId"], s.practitioner.as_str());

    let patched = app
        .patch(
            &path,
            token,
            json!({"notes": "bring results", "reason": null, "status": "confirmed"}),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    assert_eq!(patched.data()["notes"], "bring results");
    assert!(patched.data()["reason"].is_null());
    assert_eq!(patched.data()["status"], "confirmed");
    let put = app
        .call(
            Method::PUT,
            &path,
            Some(token),
            Some(json!({"endAt": at("10:00")})),
        )
        .await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.body);
    assert_eq!(put.data()["endAt"], at("10:00"));
    assert_eq!(put.data()["notes"], "bring results");

    let list = app.get("/api/v1/appointments", token).await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(
        list.body["pagination"],
        json!({"total": 1, "limit": 20, "offset": 0})
    );

    assert_eq!(
        app.delete(&path, token).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(app.get(&path, token).await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.delete(&path, token).await.status, StatusCode::NOT_FOUND);
    let list = app.get("/api/v1/appointments", token).await;
    assert_eq!(list.body["pagination"]["total"], 0);

    for (action, expected) in [
        ("create", 1),
        ("read", 1),
        ("update", 2),
        ("list", 2),
        ("delete", 1),
    ] {
        assert_eq!(
            audit_count(&app, &s.clinic, action, "appointment").await,
            expected,
            "{action}"
        );
    }
    let mut conn = app.audit_trail(s.clinic.id).await;
    let (patient, fields): (Option<Uuid>, Vec<String>) = sqlx::query_as(
        "SELECT patient_id, changed_fields FROM audit_events
          WHERE action = 'update' AND resource_type = 'appointment' ORDER BY id LIMIT 1",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(patient.map(|p| p.to_string()), Some(s.patient.clone()));
    assert_eq!(fields, ["status", "reason", "notes"]);
    app.cleanup().await;
}

#[tokio::test]
async fn invalid_bookings_name_their_fields() {
    let app = spawn_app().await;
    let s = setting(&app, "Validation").await;
    let other = setting(&app, "Elsewhere").await;
    let token = &s.clinic.token;
    let post = |body: Value| app.post("/api/v1/appointments", token, body);

    let empty = post(json!({})).await;
    assert_eq!(empty.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(empty.code(), "validation_failed");
    assert_eq!(
        empty.detail_fields(),
        ["patientId", "practitionerId", "startAt", "endAt"]
    );

    let backwards = post(booking(&s.patient, &s.practitioner, "10:00", "09:00")).await;
    assert_eq!(backwards.detail_fields(), ["endAt"]);
    let instant = post(booking(&s.patient, &s.practitioner, "10:00", "10:00")).await;
    assert_eq!(instant.detail_fields(), ["endAt"]);

    let bad = post(
        json!({"patientId": s.patient, "practitionerId": s.practitioner,
        "startAt": "2030-01-07 09:00", "endAt": at("10:00"), "status": "maybe", "reason": ""}),
    )
    .await;
    assert_eq!(bad.detail_fields(), ["startAt", "status", "reason"]);
    let malformed = post(
        json!({"patientId": "nope", "practitionerId": s.practitioner,
        "startAt": at("09:00"), "endAt": at("10:00")}),
    )
    .await;
    assert_eq!(malformed.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(malformed.detail_fields(), ["patientId"]);

    // Ids the clinic does not have: unknown, another clinic's, soft-deleted, inactive.
    let unknown = Uuid::new_v4().to_string();
    let cases = [
        (
            booking(&unknown, &s.practitioner, "09:00", "10:00"),
            "patientId",
        ),
        (
            booking(&s.patient, &unknown, "09:00", "10:00"),
            "practitionerId",
        ),
        (
            booking(&other.patient, &s.practitioner, "09:00", "10:00"),
            "patientId",
        ),
        (
            booking(&s.patient, &other.practitioner, "09:00", "10:00"),
            "practitionerId",
        ),
    ];
    for (body, field) in cases {
        let refused = post(body).await;
        assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{field}");
        assert_eq!(refused.detail_fields(), [field]);
    }
    let both = post(booking(
        &other.patient,
        &other.practitioner,
        "09:00",
        "10:00",
    ))
    .await;
    assert_eq!(both.detail_fields(), ["patientId", "practitionerId"]);

    let gone = app.create_patient(token, "Gone", "Away").await;
    app.delete(&format!("/api/v1/patients/{gone}"), token).await;
    let retired = practitioner(&app, &s.clinic, "Retired").await;
    clinic_exec(
        &app,
        &s.clinic,
        "UPDATE practitioners SET is_active = false WHERE id = $1",
        &retired,
    )
    .await;
    let removed = practitioner(&app, &s.clinic, "Removed").await;
    clinic_exec(
        &app,
        &s.clinic,
        "UPDATE practitioners SET deleted_at = now() WHERE id = $1",
        &removed,
    )
    .await;
    for (body, field) in [
        (
            booking(&gone, &s.practitioner, "09:00", "10:00"),
            "patientId",
        ),
        (
            booking(&s.patient, &retired, "09:00", "10:00"),
            "practitionerId",
        ),
        (
            booking(&s.patient, &removed, "09:00", "10:00"),
            "practitionerId",
        ),
    ] {
        let refused = post(body).await;
        assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{field}");
        assert_eq!(refused.detail_fields(), [field]);
    }

    // On update: the patient is fixed, a new practitioner must be live.
    let id = book(&app, &s, "09:00", "10:00").await;
    let path = format!("/api/v1/appointments/{id}");
    let moved = app
        .patch(&path, token, json!({"patientId": other.patient}))
        .await;
    assert_eq!(moved.detail_fields(), ["patientId"]);
    let same = app
        .patch(&path, token, json!({"patientId": s.patient}))
        .await;
    assert_eq!(same.status, StatusCode::OK);
    let foreign = app
        .patch(&path, token, json!({"practitionerId": other.practitioner}))
        .await;
    assert_eq!(foreign.detail_fields(), ["practitionerId"]);
    let cleared = app.patch(&path, token, json!({"startAt": null})).await;
    assert_eq!(cleared.detail_fields(), ["startAt"]);
    let list = app.get("/api/v1/appointments", token).await;
    assert_eq!(list.body["pagination"]["total"], 1, "nothing half-written");
    app.cleanup().await;
}

#[tokio::test]
async fn another_clinics_appointments_are_not_found() {
    let app = spawn_app().await;
    let a = setting(&app, "Clinic A").await;
    let b = setting(&app, "Clinic B").await;
    let b_appointment = book(&app, &b, "09:00", "10:00").await;
    let b_product = product(&app, &b.clinic, "Consultation", 2500, 0).await;
    let item = app
        .post(
            &format!("/api/v1/appointments/{b_appointment}/items"),
            &b.clinic.token,
            json!({"productServiceId": b_product}),
        )
        .await;
    assert_eq!(item.status, StatusCode::CREATED, "{}", item.body);
    let item_id = item.id();
    let path = format!("/api/v1/appointments/{b_appointment}");
    let token = &a.clinic.token;
    assert_eq!(app.get(&path, token).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        app.patch(&path, token, json!({"status": "cancelled"}))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(app.delete(&path, token).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        app.get(&format!("{path}/items"), token).await.status,
        StatusCode::NOT_FOUND
    );
    let a_product = product(&app, &a.clinic, "Consultation", 2500, 0).await;
    assert_eq!(
        app.post(
            &format!("{path}/items"),
            token,
            json!({"productServiceId": a_product})
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.delete(&format!("{path}/items/{item_id}"), token)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let by_patient = format!("/api/v1/appointments?patientId={}", b.patient);
    assert_eq!(
        app.get(&by_patient, token).await.body["pagination"]["total"],
        0
    );
    // B's appointment and item are untouched.
    let still = app.get(&path, &b.clinic.token).await;
    assert_eq!(still.data()["status"], "scheduled");
    let items = app.get(&format!("{path}/items"), &b.clinic.token).await;
    assert_eq!(items.data().as_array().unwrap().len(), 1);
    app.cleanup().await;
}

#[tokio::test]
async fn status_moves_along_the_workflow_and_final_ones_stay() {
    let app = spawn_app().await;
    let s = setting(&app, "Workflow").await;
    let token = &s.clinic.token;
    let shared = &app;
    let status = |id: &str, status: &str| {
        let path = format!("/api/v1/appointments/{id}");
        let body = json!({ "status": status });
        async move { shared.patch(&path, token, body).await }
    };
    let first = book(&app, &s, "08:00", "08:30").await;
    assert_eq!(status(&first, "confirmed").await.status, StatusCode::OK);
    assert_eq!(
        status(&first, "confirmed").await.status,
        StatusCode::OK,
        "no change is fine"
    );
    let back = status(&first, "scheduled").await;
    assert_eq!(
        (back.status, back.code()),
        (StatusCode::CONFLICT, "conflict")
    );
    assert_eq!(status(&first, "completed").await.status, StatusCode::OK);
    for next in ["scheduled", "confirmed", "cancelled", "no_show"] {
        assert_eq!(
            status(&first, next).await.status,
            StatusCode::CONFLICT,
            "completed -> {next}"
        );
    }
    let path = format!("/api/v1/appointments/{first}");
    let moved = app
        .patch(&path, token, json!({"startAt": at("07:30")}))
        .await;
    assert_eq!(moved.status, StatusCode::CONFLICT);
    let other = practitioner(&app, &s.clinic, "Other").await;
    let reassigned = app
        .patch(&path, token, json!({"practitionerId": other}))
        .await;
    assert_eq!(reassigned.status, StatusCode::CONFLICT);
    let noted = app.patch(&path, token, json!({"notes": "all good"})).await;
    assert_eq!(
        noted.status,
        StatusCode::OK,
        "notes of a final appointment may change"
    );

    for (start, end, path) in [
        ("09:00", "09:30", vec!["cancelled"]),
        ("10:00", "10:30", vec!["no_show"]),
        ("11:00", "11:30", vec!["completed"]),
        ("12:00", "12:30", vec!["confirmed", "no_show"]),
        ("13:00", "13:30", vec!["confirmed", "cancelled"]),
    ] {
        let id = book(&app, &s, start, end).await;
        for step in &path {
            assert_eq!(status(&id, step).await.status, StatusCode::OK, "{path:?}");
        }
        let last = path.last().unwrap();
        let revive = if *last == "completed" {
            "cancelled"
        } else {
            "scheduled"
        };
        assert_eq!(
            status(&id, revive).await.status,
            StatusCode::CONFLICT,
            "{last} -> {revive}"
        );
        let reschedule = app
            .patch(
                &format!("/api/v1/appointments/{id}"),
                token,
                json!({"endAt": at("23:00")}),
            )
            .await;
        assert_eq!(
            reschedule.status,
            StatusCode::CONFLICT,
            "{last} rescheduled"
        );
    }
    let bad = status(&first, "finished").await;
    assert_eq!(bad.detail_fields(), ["status"]);
    app.cleanup().await;
}

#[tokio::test]
async fn one_practitioner_is_never_booked_twice_at_once() {
    let app = spawn_app().await;
    let s = setting(&app, "Overlap").await;
    let token = &s.clinic.token;
    let post = |start: &str, end: &str| {
        app.post(
            "/api/v1/appointments",
            token,
            booking(&s.patient, &s.practitioner, start, end),
        )
    };
    let nine = book(&app, &s, "09:00", "09:30").await;
    assert_eq!(
        post("09:30", "10:00").await.status,
        StatusCode::CREATED,
        "back-to-back after"
    );
    assert_eq!(
        post("08:30", "09:00").await.status,
        StatusCode::CREATED,
        "back-to-back before"
    );
    for (start, end) in [
        ("09:15", "09:45"),
        ("08:45", "09:15"),
        ("09:00", "09:30"),
        ("08:00", "11:00"),
    ] {
        let clash = post(start, end).await;
        assert_eq!(
            (clash.status, clash.code()),
            (StatusCode::CONFLICT, "conflict"),
            "{start}-{end}"
        );
    }
    // Another practitioner is free then.
    let colleague = practitioner(&app, &s.clinic, "Colleague").await;
    let theirs = app
        .post(
            "/api/v1/appointments",
            token,
            booking(&s.patient, &colleague, "09:00", "09:30"),
        )
        .await;
    assert_eq!(theirs.status, StatusCode::CREATED);

    // Cancelled and no-show appointments free their slot; so does deletion.
    let path = format!("/api/v1/appointments/{nine}");
    app.patch(&path, token, json!({"status": "cancelled"}))
        .await;
    let replacement = post("09:00", "09:30").await;
    assert_eq!(replacement.status, StatusCode::CREATED);
    let replacement_path = format!("/api/v1/appointments/{}", replacement.id());
    app.patch(&replacement_path, token, json!({"status": "no_show"}))
        .await;
    let third = post("09:00", "09:30").await;
    assert_eq!(third.status, StatusCode::CREATED);
    app.delete(&format!("/api/v1/appointments/{}", third.id()), token)
        .await;
    let fourth = post("09:10", "09:20").await;
    assert_eq!(fourth.status, StatusCode::CREATED);

    // Rescheduling is checked the same way.
    let late = book(&app, &s, "14:00", "14:30").await;
    let late_path = format!("/api/v1/appointments/{late}");
    let onto = app
        .patch(
            &late_path,
            token,
            json!({"startAt": at("09:45"), "endAt": at("10:15")}),
        )
        .await;
    assert_eq!(onto.status, StatusCode::CONFLICT);
    let moved = app
        .patch(
            &late_path,
            token,
            json!({"startAt": at("10:00"), "endAt": at("10:30")}),
        )
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{}", moved.body);
    let colleague_busy = app
        .patch(
            &late_path,
            token,
            json!({"practitionerId": colleague, "startAt": at("09:00"), "endAt": at("09:30")}),
        )
        .await;
    assert_eq!(colleague_busy.status, StatusCode::CONFLICT);
    let after = app.get(&late_path, token).await;
    assert_eq!(
        after.data()["startAt"],
        at("10:00"),
        "a refused change changes nothing"
    );
    app.cleanup().await;
}

/// An app whose clinic pools hold 20 connections, so 20 requests run their
/// transactions at the same time.
async fn spawn_wide_app() -> TestApp {
    let prefix = format!("t{}", &Uuid::new_v4().simple().to_string()[..10]);
    let mut settings = settings_for(&prefix);
    settings.pool.per_clinic_max = 20;
    let state = medicalpro::app::build_state(&settings)
        .await
        .expect("building the app");
    TestApp {
        router: medicalpro::http::router(state.clone()),
        state,
        settings,
        prefix,
    }
}

#[tokio::test]
async fn concurrent_overlapping_bookings_leave_exactly_one() {
    let app = spawn_wide_app().await;
    let s = setting(&app, "Rush").await;
    let requests = (0..20).map(|i| {
        let start = format!("2030-01-07T10:{:02}:00Z", i);
        let end = format!("2030-01-07T11:{:02}:00Z", i);
        app.post(
            "/api/v1/appointments",
            &s.clinic.token,
            json!({"patientId": s.patient, "practitionerId": s.practitioner, "startAt": start, "endAt": end}),
        )
    });
    let responses = futures::future::join_all(requests).await;
    let statuses: Vec<StatusCode> = responses.iter().map(|r| r.status).collect();
    let booked = statuses
        .iter()
        .filter(|s| **s == StatusCode::CREATED)
        .count();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::CONFLICT)
        .count();
    assert_eq!((booked, refused), (1, 19), "{statuses:?}");
    let mut conn = app.clinic_admin(s.clinic.id).await;
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM appointments")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(rows, 1);
    assert_eq!(
        audit_count(&app, &s.clinic, "create", "appointment").await,
        1
    );
    app.cleanup().await;
}

#[tokio::test]
async fn lists_filter_by_window_practitioner_patient_and_status() {
    let app = spawn_app().await;
    let s = setting(&app, "Filters").await;
    let token = &s.clinic.token;
    let colleague = practitioner(&app, &s.clinic, "Colleague").await;
    let second_patient = app.create_patient(token, "Louis", "Braille").await;
    let a = book(&app, &s, "08:00", "09:00").await;
    let b = book(&app, &s, "10:00", "11:00").await;
    let c = app
        .post(
            "/api/v1/appointments",
            token,
            booking(&second_patient, &colleague, "08:30", "09:30"),
        )
        .await
        .id();
    app.patch(
        &format!("/api/v1/appointments/{b}"),
        token,
        json!({"status": "cancelled"}),
    )
    .await;
    let ids = |response: &crate::helpers::TestResponse| -> Vec<String> {
        response
            .data()
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let all = app.get("/api/v1/appointments", token).await;
    assert_eq!(
        ids(&all),
        [a.clone(), c.clone(), b.clone()],
        "by start time"
    );
    for (query, expected) in [
        (
            format!("from={}&to={}", at("09:00"), at("10:00")),
            vec![c.clone()],
        ),
        (format!("from={}", at("09:30")), vec![b.clone()]),
        (format!("to={}", at("08:30")), vec![a.clone()]),
        (
            "from=2030-01-07T09:00:00%2B01:00".to_owned(),
            vec![a.clone(), c.clone(), b.clone()],
        ),
        (format!("practitionerId={colleague}"), vec![c.clone()]),
        (
            format!("patientId={}", s.patient),
            vec![a.clone(), b.clone()],
        ),
        ("status=cancelled".to_owned(), vec![b.clone()]),
        (
            format!("status=scheduled&practitionerId={}", s.practitioner),
            vec![a.clone()],
        ),
        ("limit=1&offset=1".to_owned(), vec![c.clone()]),
    ] {
        let found = app
            .get(&format!("/api/v1/appointments?{query}"), token)
            .await;
        assert_eq!(found.status, StatusCode::OK, "{query}: {}", found.body);
        assert_eq!(ids(&found), expected, "{query}");
    }
    let paged = app
        .get("/api/v1/appointments?limit=1&offset=1", token)
        .await;
    assert_eq!(
        paged.body["pagination"],
        json!({"total": 3, "limit": 1, "offset": 1})
    );
    for bad in [
        "from=yesterday",
        "to=2030-01-07",
        "from=2030-01-07T10:00:00Z&to=2030-01-07T09:00:00Z",
        "practitionerId=42",
        "patientId=",
        "status=done",
        "limit=0",
        "limit=101",
        "offset=-1",
        "search=x",
    ] {
        let response = app.get(&format!("/api/v1/appointments?{bad}"), token).await;
        assert_eq!(
            (response.status, response.code()),
            (StatusCode::BAD_REQUEST, "bad_request"),
            "{bad}"
        );
    }
    let mut conn = app.audit_trail(s.clinic.id).await;
    let details: Value = sqlx::query_scalar(
        "SELECT details FROM audit_events WHERE action = 'list' AND patient_id IS NOT NULL LIMIT 1",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(details["patientId"], s.patient.as_str());
    app.cleanup().await;
}

#[tokio::test]
async fn items_capture_the_catalogue_price_when_added() {
    let app = spawn_app().await;
    let s = setting(&app, "Items").await;
    let other = setting(&app, "Other").await;
    let token = &s.clinic.token;
    let consultation = product(&app, &s.clinic, "Consultation", 2500, 0).await;
    let vaccine = product(&app, &s.clinic, "Vaccine", 1890, 550).await;
    let appointment = book(&app, &s, "09:00", "09:30").await;
    let items = format!("/api/v1/appointments/{appointment}/items");

    let first = app
        .post(&items, token, json!({"productServiceId": consultation}))
        .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    assert_eq!(first.data()["unitPriceCents"], 2500);
    assert_eq!(first.data()["vatRate"], 0);
    assert_eq!(first.data()["quantity"], 1);
    assert_eq!(first.data()["description"], "Consultation");
    assert_eq!(first.data()["appointmentId"], appointment.as_str());
    let second = app
        .post(
            &items,
            token,
            json!({"productServiceId": vaccine, "quantity": 2, "description": "Flu shot"}),
        )
        .await;
    assert_eq!(second.status, StatusCode::CREATED);
    assert_eq!(second.data()["description"], "Flu shot");

    // The catalogue changes; booked items do not, new ones take the new price.
    clinic_exec(
        &app,
        &s.clinic,
        "UPDATE products_services SET unit_price_cents = 9900, vat_rate = 2000 WHERE id = $1",
        &consultation,
    )
    .await;
    let listed = app.get(&items, token).await;
    assert_eq!(listed.status, StatusCode::OK);
    let rows = listed.data().as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        (
            rows[0]["unitPriceCents"].as_i64(),
            rows[0]["vatRate"].as_i64()
        ),
        (Some(2500), Some(0))
    );
    assert_eq!(
        (
            rows[1]["unitPriceCents"].as_i64(),
            rows[1]["quantity"].as_i64()
        ),
        (Some(1890), Some(2))
    );
    let third = app
        .post(&items, token, json!({"productServiceId": consultation}))
        .await;
    assert_eq!(third.data()["unitPriceCents"], 9900);

    // Refused: bad quantity, missing, other clinic's, deleted or inactive product.
    for quantity in [json!(0), json!(-1), json!(1.5), json!("2")] {
        let refused = app
            .post(
                &items,
                token,
                json!({"productServiceId": vaccine, "quantity": quantity}),
            )
            .await;
        assert_eq!(
            refused.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{quantity}"
        );
        assert_eq!(refused.detail_fields(), ["quantity"]);
    }
    assert_eq!(
        app.post(&items, token, json!({})).await.detail_fields(),
        ["productServiceId"]
    );
    let foreign = product(&app, &other.clinic, "Foreign", 100, 0).await;
    let deleted = product(&app, &s.clinic, "Deleted", 100, 0).await;
    clinic_exec(
        &app,
        &s.clinic,
        "UPDATE products_services SET deleted_at = now() WHERE id = $1",
        &deleted,
    )
    .await;
    let inactive = product(&app, &s.clinic, "Inactive", 100, 0).await;
    clinic_exec(
        &app,
        &s.clinic,
        "UPDATE products_services SET is_active = false WHERE id = $1",
        &inactive,
    )
    .await;
    for id in [foreign, deleted, inactive, Uuid::new_v4().to_string()] {
        let refused = app
            .post(&items, token, json!({"productServiceId": id}))
            .await;
        assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(refused.detail_fields(), ["productServiceId"]);
    }

    // Removing an item; ids of another appointment do not match.
    let first_id = first.id();
    let elsewhere = book(&app, &s, "10:00", "10:30").await;
    assert_eq!(
        app.delete(
            &format!("/api/v1/appointments/{elsewhere}/items/{first_id}"),
            token
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.delete(&format!("{items}/{first_id}"), token)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.delete(&format!("{items}/{first_id}"), token)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get(&items, token)
            .await
            .data()
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // A cancelled appointment's items are frozen.
    app.patch(
        &format!("/api/v1/appointments/{appointment}"),
        token,
        json!({"status": "cancelled"}),
    )
    .await;
    let frozen = app
        .post(&items, token, json!({"productServiceId": vaccine}))
        .await;
    assert_eq!(
        (frozen.status, frozen.code()),
        (StatusCode::CONFLICT, "conflict")
    );
    assert_eq!(
        app.delete(&format!("{items}/{}", second.id()), token)
            .await
            .status,
        StatusCode::CONFLICT
    );
    assert_eq!(app.get(&items, token).await.status, StatusCode::OK);
    assert_eq!(
        app.get(
            &format!("/api/v1/appointments/{}/items", Uuid::new_v4()),
            token
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    for action in ["create", "list", "delete"] {
        assert!(
            audit_count(&app, &s.clinic, action, "appointment_item").await >= 1,
            "{action}"
        );
    }
    app.cleanup().await;
}

#[tokio::test]
async fn readonly_staff_read_appointments_but_do_not_book() {
    let app = spawn_app().await;
    let s = setting(&app, "Roles").await;
    let id = book(&app, &s, "09:00", "09:30").await;
    let readonly = crate::medical_records::staff(&app, &s.clinic, "readonly").await;
    let secretary = crate::medical_records::staff(&app, &s.clinic, "secretary").await;
    assert_eq!(
        app.get(&format!("/api/v1/appointments/{id}"), &readonly)
            .await
            .status,
        StatusCode::OK
    );
    let refused = app
        .post(
            "/api/v1/appointments",
            &readonly,
            booking(&s.patient, &s.practitioner, "11:00", "11:30"),
        )
        .await;
    assert_eq!(
        (refused.status, refused.code()),
        (StatusCode::FORBIDDEN, "forbidden")
    );
    let booked = app
        .post(
            "/api/v1/appointments",
            &secretary,
            booking(&s.patient, &s.practitioner, "11:00", "11:30"),
        )
        .await;
    assert_eq!(booked.status, StatusCode::CREATED);
    app.cleanup().await;
}
