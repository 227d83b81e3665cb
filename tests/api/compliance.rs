//! Audit trail, tamper evidence, GDPR export and erasure, platform
//! administration and suspension.

use axum::http::{Method, StatusCode};
use chrono::Datelike;
use medicalpro::clinic::audit::seal;
use medicalpro::compliance::verify_clinic;
use medicalpro::platform::create_super_admin;
use medicalpro::tenancy::naming::ClinicId;
use serde_json::{json, Value};
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use crate::helpers::{spawn_app, TestApp, TestResponse};

/// The trail's rows, oldest first: action, resource type and id, actor id
/// and role, request id, client address.
type EventRow = (
    String,
    String,
    Option<Uuid>,
    Option<Uuid>,
    Option<String>,
    Option<String>,
    Option<String>,
);

async fn events(conn: &mut PgConnection) -> Vec<EventRow> {
    sqlx::query_as(
        "SELECT action, resource_type, resource_id, actor_user_id, actor_role, request_id, client_addr
           FROM audit_events ORDER BY id",
    )
    .fetch_all(conn)
    .await
    .unwrap()
}

fn request_id(response: &TestResponse) -> String {
    response
        .headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .expect("x-request-id header")
        .to_owned()
}

#[tokio::test]
async fn every_access_to_a_patient_is_recorded_with_who_and_what() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Audited").await;
    let me = app.get("/api/v1/auth/me", &clinic.token).await;
    let actor: Uuid = me.data()["user"]["id"].as_str().unwrap().parse().unwrap();
    let created = app
        .post(
            "/api/v1/patients",
            &clinic.token,
            json!({"firstName": "Alice", "lastName": "Audit"}),
        )
        .await;
    let id = created.id();
    let read = app
        .get(&format!("/api/v1/patients/{id}"), &clinic.token)
        .await;
    let listed = app
        .get("/api/v1/patients?search=Alice", &clinic.token)
        .await;
    let patched = app
        .patch(
            &format!("/api/v1/patients/{id}"),
            &clinic.token,
            json!({"notes": "secret note"}),
        )
        .await;
    let deleted = app
        .delete(&format!("/api/v1/patients/{id}"), &clinic.token)
        .await;
    let responses = [&created, &read, &listed, &patched, &deleted];
    let mut db = app.audit_trail(clinic.id).await;
    let rows = events(&mut db).await;
    let actions: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(actions, ["create", "read", "list", "update", "delete"]);
    for (row, response) in rows.iter().zip(responses) {
        let (action, resource, resource_id, actor_id, role, request, address) = row;
        assert_eq!(resource, "patient");
        assert_eq!(*actor_id, Some(actor), "{action}");
        assert_eq!(role.as_deref(), Some("admin"));
        assert_eq!(
            request.as_deref(),
            Some(request_id(response).as_str()),
            "{action}"
        );
        assert_eq!(address.as_deref(), Some("127.0.0.1"), "{action}");
        if action != "list" {
            assert_eq!(resource_id.map(|r| r.to_string()), Some(id.clone()));
        }
    }
    let update: (Vec<String>, String) = sqlx::query_as(
        "SELECT changed_fields, details::text FROM audit_events WHERE action = 'update'",
    )
    .fetch_one(&mut db)
    .await
    .unwrap();
    assert_eq!(update.0, ["notes"]);
    let all_text: String =
        sqlx::query_scalar("SELECT string_agg(t::text, ' ') FROM audit_events t")
            .fetch_one(&mut db)
            .await
            .unwrap();
    assert!(
        !all_text.contains("secret note") && !all_text.contains("Alice"),
        "values in the trail"
    );

    let trail = app
        .get(
            &format!("/api/v1/audit?patientId={id}&action=read"),
            &clinic.token,
        )
        .await;
    assert_eq!(trail.status, StatusCode::OK, "{}", trail.body);
    assert_eq!(trail.body["pagination"]["total"], 1);
    assert_eq!(trail.data()[0]["resourceId"], id);
    assert_eq!(
        app.get("/api/v1/audit?from=yesterday", &clinic.token)
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    app.cleanup().await;
}

/// An event that cannot be recorded takes its change with it: the event
/// and the change are one transaction.
#[tokio::test]
async fn a_change_whose_event_fails_does_not_happen() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Atomic").await;
    let id = app.create_patient(&clinic.token, "Ada", "Atomic").await;
    // The trail refuses update events (a constraint added by hand).
    let mut admin = app.clinic_admin(clinic.id).await;
    sqlx::raw_sql(
        "ALTER TABLE audit_events_pending ADD CONSTRAINT refuse_updates
             CHECK (action <> 'update') NOT VALID",
    )
    .execute(&mut admin)
    .await
    .unwrap();
    let patched = app
        .patch(
            &format!("/api/v1/patients/{id}"),
            &clinic.token,
            json!({"lastName": "Changed", "notes": "never stored"}),
        )
        .await;
    assert_eq!(
        patched.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "{}",
        patched.body
    );
    let (last_name, notes): (String, Option<String>) =
        sqlx::query_as("SELECT last_name, notes FROM patients WHERE id = $1::uuid")
            .bind(&id)
            .fetch_one(&mut admin)
            .await
            .unwrap();
    assert_eq!((last_name.as_str(), notes), ("Atomic", None));
    let updates: i64 = sqlx::query_scalar(
        "SELECT (SELECT COUNT(*) FROM audit_events WHERE action = 'update')
              + (SELECT COUNT(*) FROM audit_events_pending WHERE action = 'update')",
    )
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert_eq!(updates, 0);
    // Once the trail accepts it again, the same change goes through.
    sqlx::raw_sql("ALTER TABLE audit_events_pending DROP CONSTRAINT refuse_updates")
        .execute(&mut admin)
        .await
        .unwrap();
    let again = app
        .patch(
            &format!("/api/v1/patients/{id}"),
            &clinic.token,
            json!({"lastName": "Changed"}),
        )
        .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    admin.close().await.unwrap();
    app.cleanup().await;
}

#[tokio::test]
async fn the_clinic_role_cannot_alter_its_trail() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Append only").await;
    app.create_patient(&clinic.token, "Bob", "Trail").await;
    let role = app.clinic_database(clinic.id);
    let password = app.clinic_password(clinic.id).await;
    let mut conn = app.connect_as(&role, &password, &role).await.unwrap();
    // Control: the role may seal, read the chain and record events (whose
    // time the database sets).
    seal(&mut conn).await.unwrap();
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_events")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(count, 1);
    // While another session extends the chain, the event is left pending.
    let mut holder = app.admin_connection(&role).await;
    sqlx::raw_sql("BEGIN; SELECT pg_advisory_xact_lock(7311, 1)")
        .execute(&mut holder)
        .await
        .unwrap();
    let chained: bool = sqlx::query_scalar(
        "SELECT audit_events_append(NULL, 'admin', 'read', 'patient', NULL, NULL, NULL, NULL, \
             NULL, NULL)",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert!(!chained);
    sqlx::raw_sql("COMMIT").execute(&mut holder).await.unwrap();
    for attack in [
        "UPDATE audit_events SET action = 'read'",
        "DELETE FROM audit_events",
        "TRUNCATE audit_events",
        "ALTER TABLE audit_events DISABLE TRIGGER USER",
        "DROP TABLE audit_events",
        "DROP TABLE audit_events CASCADE",
        "DROP SCHEMA public CASCADE",
        "DROP TRIGGER audit_events_frozen ON audit_events",
        // Writing, reading, changing or dropping what is not sealed yet.
        "INSERT INTO audit_events_pending (occurred_at, action, resource_type) \
            VALUES ('2001-01-01', 'read', 'patient')",
        "SELECT * FROM audit_events_pending",
        "UPDATE audit_events_pending SET action = 'list'",
        "DELETE FROM audit_events_pending",
        "TRUNCATE audit_events_pending",
        "ALTER TABLE audit_events_pending DISABLE TRIGGER USER",
        "DROP TABLE audit_events_pending",
        "DROP TABLE audit_events_pending CASCADE",
        "CREATE OR REPLACE FUNCTION audit_events_seal(batch integer) RETURNS integer \
            LANGUAGE sql AS 'SELECT 0'",
        // Chaining without the lock.
        "SELECT audit_events_chain_pending(10)",
    ] {
        // Refused for lack of privilege (42501), not for any other reason.
        let refused = sqlx::raw_sql(attack).execute(&mut conn).await.err();
        let code = refused
            .as_ref()
            .and_then(|e| e.as_database_error())
            .and_then(|e| e.code().map(|c| c.into_owned()));
        assert_eq!(code.as_deref(), Some("42501"), "{attack}: {refused:?}");
    }
    assert_eq!(seal(&mut conn).await.unwrap(), 1);
    // Writing into the chain directly, with a forged id, time and hashes,
    // only records one more event: the database's own.
    sqlx::raw_sql(
        "INSERT INTO audit_events (id, occurred_at, action, resource_type, prev_hash, hash)
         VALUES (100, '2001-01-01', 'list', 'patient', '\\x00', '\\x00')",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let (after, dated_today, max_id): (i64, bool, i64) = sqlx::query_as(
        "SELECT COUNT(*), bool_and(occurred_at > now() - interval '1 hour'), MAX(id) FROM audit_events",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!((after, dated_today, max_id), (3, true, 3));
    let report = verify_clinic(&app.state.databases, ClinicId(clinic.id))
        .await
        .unwrap();
    assert_eq!((report.events, report.broken), (3, None));
    app.cleanup().await;
}

async fn audited_clinic(app: &TestApp, name: &str) -> (Uuid, String) {
    let clinic = app.register_clinic(name).await;
    let id = app.create_patient(&clinic.token, "Carol", "Chain").await;
    for _ in 0..4 {
        app.get(&format!("/api/v1/patients/{id}"), &clinic.token)
            .await;
    }
    (clinic.id, clinic.token)
}

#[tokio::test]
async fn verify_finds_an_edited_row_a_removed_row_and_a_cut_tail() {
    let app = spawn_app().await;
    let databases = &app.state.databases;
    let (edited, _) = audited_clinic(&app, "Edited").await;
    let (removed, _) = audited_clinic(&app, "Removed").await;
    let (cut, token) = audited_clinic(&app, "Cut").await;
    for clinic in [edited, removed, cut] {
        let sound = verify_clinic(databases, ClinicId(clinic)).await.unwrap();
        assert_eq!((sound.events, sound.broken), (5, None));
    }
    // The admin owns the table, so it can bypass the triggers: the chain tells.
    let mut db = app.clinic_admin(edited).await;
    sqlx::raw_sql("ALTER TABLE audit_events DISABLE TRIGGER USER; UPDATE audit_events SET actor_role = 'readonly' WHERE id = 3;")
        .execute(&mut db)
        .await
        .unwrap();
    let report = verify_clinic(databases, ClinicId(edited)).await.unwrap();
    assert_eq!(report.broken.map(|b| b.id), Some(3));

    let mut db = app.clinic_admin(removed).await;
    sqlx::raw_sql(
        "ALTER TABLE audit_events DISABLE TRIGGER USER; DELETE FROM audit_events WHERE id = 2;",
    )
    .execute(&mut db)
    .await
    .unwrap();
    let report = verify_clinic(databases, ClinicId(removed)).await.unwrap();
    assert_eq!(
        report.broken.map(|b| b.id),
        Some(3),
        "row 2 missing is reported at row 3"
    );

    // New events after the anchor, then the newest rows removed.
    let patient: Uuid = sqlx::query_scalar("SELECT id FROM patients LIMIT 1")
        .fetch_one(&mut app.clinic_admin(cut).await)
        .await
        .unwrap();
    app.get(&format!("/api/v1/patients/{patient}"), &token)
        .await;
    let mut db = app.audit_trail(cut).await;
    sqlx::raw_sql(
        "ALTER TABLE audit_events DISABLE TRIGGER USER; DELETE FROM audit_events WHERE id >= 5;",
    )
    .execute(&mut db)
    .await
    .unwrap();
    let report = verify_clinic(databases, ClinicId(cut)).await.unwrap();
    assert_eq!(
        report.broken.map(|b| b.id),
        Some(5),
        "the anchored head is gone"
    );
    app.cleanup().await;
}

/// Inserts, as the admin, one row of each kind attached to `patient`.
async fn attach_everything(
    db: &mut PgConnection,
    patient: &str,
    record_days_ago: i64,
    invoice_year: Option<i32>,
) {
    let patient: Uuid = patient.parse().unwrap();
    let practitioner: Uuid = sqlx::query_scalar(
        "INSERT INTO practitioners (first_name, last_name) VALUES ('Paul', 'Practitioner') RETURNING id",
    )
    .fetch_one(&mut *db)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO appointments (patient_id, practitioner_id, start_at, end_at, status, reason)
         VALUES ($1, $2, now() - interval '1 hour', now(), 'completed', 'Eveline checkup')",
    )
    .bind(patient)
    .bind(practitioner)
    .execute(&mut *db)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO medical_records (patient_id, record_type, title, content, recorded_at)
         VALUES ($1, 'allergy', 'Eveline allergy', 'Penicillin', now() - make_interval(days => $2::int))",
    )
    .bind(patient)
    .bind(record_days_ago as i32)
    .execute(&mut *db)
    .await
    .unwrap();
    let template: Uuid = sqlx::query_scalar(
        "INSERT INTO consent_templates (family_id, title, body) VALUES (gen_random_uuid(), 'Care', 'I agree') RETURNING id",
    )
    .fetch_one(&mut *db)
    .await
    .unwrap();
    sqlx::query("INSERT INTO consents (patient_id, template_id, status, signed_at) VALUES ($1, $2, 'signed', now())")
        .bind(patient)
        .bind(template)
        .execute(&mut *db)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO documents (document_type, patient_id, currency) VALUES ('quote', $1, 'EUR')",
    )
    .bind(patient)
    .execute(&mut *db)
    .await
    .unwrap();
    if let Some(year) = invoice_year {
        sqlx::query(
            "INSERT INTO documents (document_type, patient_id, currency, status, number, issue_date)
             VALUES ('invoice', $1, 'EUR', 'sent', 'INV-' || $2 || '-0001', make_date($2, 3, 1))",
        )
        .bind(patient)
        .bind(year)
        .execute(&mut *db)
        .await
        .unwrap();
    }
}

#[tokio::test]
async fn export_holds_everything_about_the_patient_and_is_audited() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Export").await;
    let other = app.create_patient(&clinic.token, "Other", "Person").await;
    let id = app.create_patient(&clinic.token, "Eveline", "Export").await;
    let mut db = app.clinic_admin(clinic.id).await;
    attach_everything(&mut db, &id, 1, Some(2026)).await;
    attach_everything(&mut db, &other, 1, None).await;
    let export = app
        .get(&format!("/api/v1/patients/{id}/export"), &clinic.token)
        .await;
    assert_eq!(export.status, StatusCode::OK, "{}", export.body);
    let data = export.data();
    assert_eq!(data["patient"]["first_name"], "Eveline");
    assert_eq!(data["appointments"].as_array().unwrap().len(), 1);
    assert_eq!(data["medicalRecords"][0]["content"], "Penicillin");
    assert_eq!(data["consents"][0]["template"]["body"], "I agree");
    assert_eq!(data["documents"].as_array().unwrap().len(), 2);
    let audited: Vec<&str> = data["auditEvents"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert!(audited.contains(&"create"), "{audited:?}");
    assert!(
        !export.body.to_string().contains(&other),
        "another patient's data in the export"
    );
    seal(&mut db).await.unwrap();
    let exported: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM audit_events WHERE action = 'export' AND patient_id = $1",
    )
    .bind(id.parse::<Uuid>().unwrap())
    .fetch_one(&mut db)
    .await
    .unwrap();
    assert_eq!(exported, 1);
    app.cleanup().await;
}

#[tokio::test]
async fn erasure_waits_for_retention_then_leaves_no_trace_of_the_name() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Erase").await;
    let kept = app.create_patient(&clinic.token, "Keeper", "Kept").await;
    let mut db = app.clinic_admin(clinic.id).await;
    // A recent medical record and this year's invoice: both retained.
    let today = chrono::Utc::now().date_naive();
    let this_year = today.year();
    attach_everything(&mut db, &kept, 1, Some(this_year)).await;
    let refused = app
        .call(
            Method::POST,
            &format!("/api/v1/patients/{kept}/erase"),
            Some(&clinic.token),
            None,
        )
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.body);
    assert_eq!(refused.code(), "retention_applies");
    let details = refused.body["error"]["details"].as_array().unwrap();
    let kinds: Vec<&str> = details.iter().filter_map(|d| d["kind"].as_str()).collect();
    assert_eq!(kinds, ["medical_record", "invoice"]);
    // Invoices: to the end of the tenth year after issue.
    assert_eq!(
        details[1]["retainedUntil"],
        format!("{}-12-31", this_year + 10)
    );
    // Medical records: 20 years after the last visit (today; or yesterday
    // where the server's date is still behind UTC's).
    let record_until = details[0]["retainedUntil"].as_str().unwrap();
    let in_twenty_years = |day: chrono::NaiveDate| {
        day.with_year(day.year() + 20)
            .unwrap_or(day + chrono::Days::new(1))
            .to_string()
    };
    assert!(
        [
            in_twenty_years(today),
            in_twenty_years(today.pred_opt().unwrap())
        ]
        .contains(&record_until.to_owned()),
        "{record_until}"
    );
    // A patient seen before their eighth birthday: until their 28th, when
    // that is later than 20 years after the visit.
    let born = today
        .with_year(this_year - 3)
        .unwrap_or(today - chrono::Days::new(3 * 365));
    let child = app
        .post(
            "/api/v1/patients",
            &clinic.token,
            json!({"firstName": "Tom", "lastName": "Young", "birthDate": born.to_string()}),
        )
        .await
        .id();
    attach_everything(&mut db, &child, 1, None).await;
    let held = app
        .call(
            Method::POST,
            &format!("/api/v1/patients/{child}/erase"),
            Some(&clinic.token),
            None,
        )
        .await;
    assert_eq!(held.code(), "retention_applies", "{}", held.body);
    assert_eq!(
        held.body["error"]["details"][0]["retainedUntil"],
        born.with_year(born.year() + 28).unwrap().to_string()
    );
    assert_eq!(
        app.get(&format!("/api/v1/patients/{kept}"), &clinic.token)
            .await
            .status,
        StatusCode::OK
    );

    // Old enough: records from 21 years ago (and the completed visit is recent,
    // so use a patient whose only visit is old), no invoice.
    // Every identifying field filled in, at creation and by a change.
    let gone = app
        .post(
            "/api/v1/patients",
            &clinic.token,
            json!({"firstName": "Zebulon", "lastName": "Erasable", "birthDate": "1955-08-14",
                   "gender": "female", "phone": "+33 6 12 34 56 78",
                   "nationalId": crate::patients::PUBLISHED_NIR,
                   "address": {"line1": "12 rue Oubliette", "line2": "Batiment Q",
                               "city": "Effaceville", "postalCode": "75999", "country": "FR"}}),
        )
        .await;
    assert_eq!(gone.status, StatusCode::CREATED, "{}", gone.body);
    let gone = gone.id();
    let changed = app
        .patch(
            &format!("/api/v1/patients/{gone}"),
            &clinic.token,
            json!({"email": "zebulon@example.fr", "notes": "Zebulon's notes"}),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    assert_eq!(changed.data()["email"], "zebulon@example.fr");
    attach_everything(&mut db, &gone, 365 * 21 + 10, None).await;
    sqlx::query("UPDATE appointments SET start_at = start_at - interval '22 years', end_at = end_at - interval '22 years' WHERE patient_id = $1")
        .bind(gone.parse::<Uuid>().unwrap())
        .execute(&mut db)
        .await
        .unwrap();
    let erased = app
        .call(
            Method::POST,
            &format!("/api/v1/patients/{gone}/erase"),
            Some(&clinic.token),
            None,
        )
        .await;
    assert_eq!(erased.status, StatusCode::OK, "{}", erased.body);
    assert_eq!(erased.data()["medicalRecords"], 1);
    assert_eq!(
        app.get(&format!("/api/v1/patients/{gone}"), &clinic.token)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let again = app
        .call(
            Method::POST,
            &format!("/api/v1/patients/{gone}/erase"),
            Some(&clinic.token),
            None,
        )
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);

    let hits = scan_text_columns(
        &mut db,
        &[
            "Zebulon",
            "Erasable",
            "zebulon@example.fr",
            "12 34 56 78",
            crate::patients::PUBLISHED_NIR,
            "Oubliette",
            "Batiment Q",
            "Effaceville",
            "75999",
            "Eveline",
        ],
    )
    .await;
    let identifying_left: (bool, bool, bool) = sqlx::query_as(
        "SELECT birth_date IS NOT NULL, gender IS NOT NULL, address_country IS NOT NULL
           FROM patients WHERE id = $1::uuid",
    )
    .bind(&gone)
    .fetch_one(&mut db)
    .await
    .unwrap();
    assert_eq!(identifying_left, (false, false, false));
    // "Eveline" is in the kept patient's rows: the control that the scan sees data.
    assert!(
        hits.iter().any(|h| h.starts_with("Eveline")),
        "scan found nothing at all: {hits:?}"
    );
    let leaks: Vec<&String> = hits.iter().filter(|h| !h.starts_with("Eveline")).collect();
    assert!(leaks.is_empty(), "erased values remain: {leaks:?}");
    seal(&mut db).await.unwrap();
    let erase_events: (i64, String) = sqlx::query_as(
        "SELECT COUNT(*), COALESCE(string_agg(details::text, ''), '') FROM audit_events WHERE action = 'erase'",
    )
    .fetch_one(&mut db)
    .await
    .unwrap();
    assert_eq!(erase_events.0, 1);
    assert!(!erase_events.1.contains("Zebulon"));
    let report = verify_clinic(&app.state.databases, ClinicId(clinic.id))
        .await
        .unwrap();
    assert_eq!(report.broken, None);
    app.cleanup().await;
}

/// Every `value` found in any text-like column of the database, as
/// "value in table.column".
async fn scan_text_columns(db: &mut PgConnection, values: &[&str]) -> Vec<String> {
    let columns: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text FROM information_schema.columns
          WHERE table_schema = 'public' AND data_type IN ('text', 'character varying', 'jsonb', 'character', 'ARRAY')",
    )
    .fetch_all(&mut *db)
    .await
    .unwrap();
    let mut hits = Vec::new();
    for (table, column) in columns {
        for value in values {
            let count: i64 = sqlx::query_scalar(&format!(
                "SELECT COUNT(*) FROM \"{table}\" WHERE \"{column}\"::text ILIKE '%' || $1 || '%'"
            ))
            .bind(value)
            .fetch_one(&mut *db)
            .await
            .unwrap();
            if count > 0 {
                hits.push(format!("{value} in {table}.{column}"));
            }
        }
    }
    hits
}

#[tokio::test]
async fn platform_admins_suspend_clinics_and_read_no_patient_data() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Platform").await;
    let patient = app.create_patient(&clinic.token, "Gustave", "Hidden").await;
    let email = format!("root-{}@example.fr", &app.prefix);
    create_super_admin(
        &app.state.databases.central,
        &email,
        "platform password".into(),
    )
    .await
    .unwrap();
    let login = app.login(&email, "platform password").await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    let root = login.data()["accessToken"].as_str().unwrap().to_owned();

    // A super admin reaches no clinic resource.
    assert_eq!(app.get("/api/v1/patients", &root).await.code(), "forbidden");
    assert_eq!(
        app.get(&format!("/api/v1/patients/{patient}/export"), &root)
            .await
            .code(),
        "forbidden"
    );
    // A clinic admin reaches no platform resource.
    assert_eq!(
        app.get("/api/v1/admin/clinics", &clinic.token).await.code(),
        "forbidden"
    );

    let list = app.get("/api/v1/admin/clinics", &root).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    let listed = &list.data()[0];
    assert_eq!(listed["id"], clinic.id.to_string());
    assert!(listed["sizeBytes"].as_i64().unwrap() > 0);
    assert_eq!(
        listed["schemaVersion"],
        medicalpro::migrations::latest_version(&medicalpro::migrations::CLINIC)
    );
    assert!(!list.body.to_string().contains("Gustave"));

    let suspend = app
        .call(
            Method::POST,
            &format!("/api/v1/admin/clinics/{}/suspend", clinic.id),
            Some(&root),
            None,
        )
        .await;
    assert_eq!(suspend.status, StatusCode::OK, "{}", suspend.body);
    assert_eq!(suspend.data()["status"], "suspended");
    let refused = app.get("/api/v1/patients", &clinic.token).await;
    assert_eq!(
        (refused.status, refused.code()),
        (StatusCode::FORBIDDEN, "clinic_inactive")
    );
    let activate = app
        .call(
            Method::POST,
            &format!("/api/v1/admin/clinics/{}/activate", clinic.id),
            Some(&root),
            None,
        )
        .await;
    assert_eq!(activate.status, StatusCode::OK);
    assert_eq!(
        app.get("/api/v1/patients", &clinic.token).await.status,
        StatusCode::OK
    );
    let missing = app
        .call(
            Method::POST,
            &format!("/api/v1/admin/clinics/{}/suspend", Uuid::new_v4()),
            Some(&root),
            None,
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);

    let actions: Vec<String> =
        sqlx::query_scalar("SELECT action FROM audit_logs WHERE company_id = $1 ORDER BY id")
            .bind(clinic.id)
            .fetch_all(&app.state.databases.central)
            .await
            .unwrap();
    for expected in ["clinic.provisioned", "clinic.suspended", "clinic.activated"] {
        assert!(
            actions.iter().any(|a| a == expected),
            "{expected} not in {actions:?}"
        );
    }
    let central_dump: Value = sqlx::query_scalar("SELECT jsonb_agg(to_jsonb(a)) FROM audit_logs a")
        .fetch_one(&app.state.databases.central)
        .await
        .unwrap();
    assert!(!central_dump.to_string().contains("Gustave"));
    app.cleanup().await;
}

#[tokio::test]
async fn events_left_pending_are_sealed_shortly_after_the_request() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Sealed").await;
    let id = app.create_patient(&clinic.token, "Sally", "Seal").await;
    // Another session extends the chain meanwhile: the reads are served,
    // their events left pending.
    let mut db = app.clinic_admin(clinic.id).await;
    sqlx::raw_sql("BEGIN; SELECT pg_advisory_xact_lock(7311, 1)")
        .execute(&mut db)
        .await
        .unwrap();
    for _ in 0..5 {
        let read = app
            .get(&format!("/api/v1/patients/{id}"), &clinic.token)
            .await;
        assert_eq!(read.status, StatusCode::OK);
    }
    let pending: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_events_pending")
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(pending, 5);
    sqlx::raw_sql("COMMIT").execute(&mut db).await.unwrap();
    // No explicit seal here: the server's sealer chains them on its own.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let (sealed, pending) = loop {
        let counts: (i64, i64) = sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM audit_events), (SELECT COUNT(*) FROM audit_events_pending)",
        )
        .fetch_one(&mut db)
        .await
        .unwrap();
        if counts.1 == 0 || std::time::Instant::now() > deadline {
            break counts;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!((sealed, pending), (6, 0));
    let report = verify_clinic(&app.state.databases, ClinicId(clinic.id))
        .await
        .unwrap();
    assert_eq!((report.events, report.broken), (6, None));
    app.cleanup().await;
}
