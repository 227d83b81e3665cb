use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use serde_json::json;

use crate::helpers::{cluster, spawn_app};

/// NIRs written out in full, keys included (key = 97 - the 13-digit number
/// mod 97, with 2A read as 19 and 2B as 18, per INSEE): fixed literals, not
/// computed by the formula under test. The first is INSEE's published example
/// (2 55 08 14 168 025 38).
pub const PUBLISHED_NIR: &str = "255081416802538";
const NIR_MARIE: &str = "267117512345631";
const NIR_MAINLAND: &str = "185077512345608";
const NIR_CORSICA_A: &str = "180052A12345684";
const NIR_CORSICA_B: &str = "299102B65432102";
/// The mainland one with a wrong key.
const NIR_WRONG_KEY: &str = "185077512345609";
/// Used by one test only, which looks for it in PostgreSQL's log.
const NIR_UNLOGGED: &str = "192036938721439";

#[tokio::test]
async fn patient_lifecycle_create_read_update_delete() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Lifecycle").await;
    let created = app
        .post(
            "/api/v1/patients",
            &clinic.token,
            json!({"firstName": " Marie ", "lastName": "Curie", "birthDate": "1967-11-07",
                   "gender": "female", "email": "marie@example.fr", "phone": "+33 6 12 34 56 78",
                   "address": {"line1": "1 rue Pierre", "city": "Paris", "postalCode": "75005", "country": "fr"},
                   "nationalId": NIR_MARIE, "notes": "allergic to nothing"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.id();
    assert_eq!(created.data()["firstName"], "Marie");
    assert_eq!(created.data()["address"]["country"], "FR");
    assert_eq!(created.data()["status"], "active");
    assert!(created.data()["createdAt"].is_string());

    let read = app
        .get(&format!("/api/v1/patients/{id}"), &clinic.token)
        .await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.data()["email"], "marie@example.fr");

    let patched = app
        .patch(
            &format!("/api/v1/patients/{id}"),
            &clinic.token,
            json!({"lastName": "Skłodowska", "phone": null}),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    assert_eq!(patched.data()["lastName"], "Skłodowska");
    assert_eq!(patched.data()["firstName"], "Marie");
    assert!(patched.data()["phone"].is_null());

    let put = app
        .call(
            Method::PUT,
            &format!("/api/v1/patients/{id}"),
            Some(&clinic.token),
            Some(json!({"status": "inactive"})),
        )
        .await;
    assert_eq!(put.status, StatusCode::OK);
    assert_eq!(put.data()["status"], "inactive");
    assert_eq!(put.data()["lastName"], "Skłodowska");

    let deleted = app
        .delete(&format!("/api/v1/patients/{id}"), &clinic.token)
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.get(&format!("/api/v1/patients/{id}"), &clinic.token)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.delete(&format!("/api/v1/patients/{id}"), &clinic.token)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let list = app.get("/api/v1/patients", &clinic.token).await;
    assert_eq!(list.body["pagination"]["total"], 0);
    app.cleanup().await;
}

#[tokio::test]
async fn list_paginates_and_searches_names_email_and_phone() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Lists").await;
    for i in 0..25 {
        app.create_patient(&clinic.token, &format!("Pat{i:02}"), "Durand")
            .await;
    }
    app.post("/api/v1/patients", &clinic.token, json!({"firstName": "Zoé", "lastName": "Martin", "email": "zoe@m.fr", "phone": "0611223344"}))
        .await;
    let first = app.get("/api/v1/patients", &clinic.token).await;
    assert_eq!(first.data().as_array().unwrap().len(), 20);
    assert_eq!(
        first.body["pagination"],
        json!({"total": 26, "limit": 20, "offset": 0})
    );
    let last = app
        .get("/api/v1/patients?limit=10&offset=20", &clinic.token)
        .await;
    assert_eq!(last.data().as_array().unwrap().len(), 6);
    // Both ways of answering a search (under three characters, and from
    // the search index's matches) keep the name order and the full total,
    // also past the end.
    for (query, total, first_names) in [
        ("limit=10&offset=40", 26, vec![]),
        (
            "search=pa&limit=3&offset=8",
            25,
            vec!["Pat08", "Pat09", "Pat10"],
        ),
        ("search=pa&offset=25", 25, vec![]),
        (
            "search=durand&limit=3&offset=22",
            25,
            vec!["Pat22", "Pat23", "Pat24"],
        ),
        ("search=durand&offset=30", 25, vec![]),
    ] {
        let page = app
            .get(&format!("/api/v1/patients?{query}"), &clinic.token)
            .await;
        assert_eq!(page.status, StatusCode::OK, "{query}");
        assert_eq!(page.body["pagination"]["total"], total, "{query}");
        let names: Vec<&str> = page
            .data()
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["firstName"].as_str().unwrap())
            .collect();
        assert_eq!(names, first_names, "{query}");
    }
    for (query, expected) in [
        ("martin", 1),
        ("zoé", 1),
        ("zoe%40m", 1),
        ("0611", 1),
        ("44", 1),
        ("durand", 25),
        ("pat0", 10),
        ("%25", 0),
        ("Zoé%20Martin", 1),
        ("martin%20zoé", 1),
        ("n%20z", 1),
    ] {
        let found = app
            .get(&format!("/api/v1/patients?search={query}"), &clinic.token)
            .await;
        assert_eq!(
            found.body["pagination"]["total"], expected,
            "search {query}"
        );
    }
    for bad in [
        "limit=0",
        "limit=101",
        "offset=-1",
        "limit=ten",
        "unknown=1",
    ] {
        let response = app
            .get(&format!("/api/v1/patients?{bad}"), &clinic.token)
            .await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(response.code(), "bad_request");
    }
    app.cleanup().await;
}

#[tokio::test]
async fn invalid_fields_are_named_in_details() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Validation").await;
    let response = app
        .post(
            "/api/v1/patients",
            &clinic.token,
            json!({"firstName": "", "birthDate": "2999-01-01", "gender": "robot", "email": "x@",
                   "phone": "abc", "address": {"country": "France"}, "status": "gone"}),
        )
        .await;
    assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(response.code(), "validation_failed");
    let fields = response.detail_fields();
    for field in [
        "firstName",
        "lastName",
        "birthDate",
        "gender",
        "email",
        "phone",
        "address.country",
        "status",
    ] {
        assert!(
            fields.contains(&field.to_owned()),
            "{field} not in {fields:?}"
        );
    }
    let wrong_type = app
        .post(
            "/api/v1/patients",
            &clinic.token,
            json!({"firstName": 42, "lastName": "X"}),
        )
        .await;
    assert_eq!(wrong_type.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(wrong_type.detail_fields(), vec!["firstName"]);
    let unknown = app
        .post(
            "/api/v1/patients",
            &clinic.token,
            json!({"firstName": "A", "lastName": "B", "ssn": "1"}),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::UNPROCESSABLE_ENTITY);
    let list = app.get("/api/v1/patients", &clinic.token).await;
    assert_eq!(list.body["pagination"]["total"], 0, "nothing half-written");
    app.cleanup().await;
}

#[tokio::test]
async fn french_national_ids_are_checked_and_unique() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("NIR").await;
    let valid = NIR_MAINLAND.to_owned();
    let corsica_a = NIR_CORSICA_A.to_owned();
    let corsica_b = NIR_CORSICA_B.to_owned();
    let wrong = NIR_WRONG_KEY.to_owned();
    let create = |national_id: String, last: &str| {
        app.post(
            "/api/v1/patients",
            &clinic.token,
            json!({"firstName": "A", "lastName": last, "nationalId": national_id}),
        )
    };
    let refused = create(wrong, "Wrong").await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(refused.detail_fields(), vec!["nationalId"]);
    for (id, last) in [
        (&valid, "Valid"),
        (&corsica_a, "CorseA"),
        (&corsica_b, "CorseB"),
    ] {
        let created = create(id.clone(), last).await;
        assert_eq!(
            created.status,
            StatusCode::CREATED,
            "{id}: {}",
            created.body
        );
    }
    let duplicate = create(valid.clone(), "Twin").await;
    assert_eq!(duplicate.status, StatusCode::CONFLICT);
    assert_eq!(duplicate.code(), "conflict");
    app.cleanup().await;
}

#[tokio::test]
async fn duplicate_national_ids_never_reach_the_database_log() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Quiet log").await;
    let first = app
        .post(
            "/api/v1/patients",
            &clinic.token,
            json!({"firstName": "A", "lastName": "First", "nationalId": NIR_UNLOGGED}),
        )
        .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    let twin = app
        .post(
            "/api/v1/patients",
            &clinic.token,
            json!({"firstName": "A", "lastName": "Twin", "nationalId": NIR_UNLOGGED}),
        )
        .await;
    assert_eq!(twin.status, StatusCode::CONFLICT, "{}", twin.body);
    assert_eq!(twin.code(), "conflict");
    let other = app.create_patient(&clinic.token, "B", "Other").await;
    let path = format!("/api/v1/patients/{other}");
    let taking = json!({"nationalId": NIR_UNLOGGED});
    let patched = app.patch(&path, &clinic.token, taking.clone()).await;
    assert_eq!(patched.status, StatusCode::CONFLICT, "{}", patched.body);
    assert_eq!(patched.code(), "conflict");
    let put = app
        .call(Method::PUT, &path, Some(&clinic.token), Some(taking))
        .await;
    assert_eq!(put.status, StatusCode::CONFLICT, "{}", put.body);
    let unchanged = app.get(&path, &clinic.token).await;
    assert_eq!(unchanged.data()["nationalId"], serde_json::Value::Null);
    // Renaming a patient while keeping its own national id is no conflict.
    let renamed = app
        .patch(
            &format!("/api/v1/patients/{}", first.id()),
            &clinic.token,
            json!({"lastName": "Renamed", "nationalId": NIR_UNLOGGED}),
        )
        .await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.body);

    // Control: a unique violation does reach this log, with its key.
    let marker = format!("marker{}", uuid::Uuid::new_v4().simple());
    let mut db = app.clinic_admin(clinic.id).await;
    sqlx::query("CREATE TEMP TABLE seen (k text UNIQUE)")
        .execute(&mut db)
        .await
        .unwrap();
    for _ in 0..2 {
        let _ = sqlx::query("INSERT INTO seen VALUES ($1)")
            .bind(&marker)
            .execute(&mut db)
            .await;
    }
    let log = std::fs::read_to_string(&cluster().log_path).expect("the cluster's log");
    assert!(log.contains(&marker), "the control violation is logged");
    let digits = &NIR_UNLOGGED[..13];
    assert!(
        !log.contains(digits),
        "the NIR is in PostgreSQL's log: {}",
        log.lines()
            .filter(|l| l.contains(digits))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    app.cleanup().await;
}

#[tokio::test]
async fn malformed_requests_get_the_envelope_never_a_500() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Hostile").await;
    let raw = |content_type: &str, body: Vec<u8>| {
        Request::builder()
            .method(Method::POST)
            .uri("/api/v1/patients")
            .header(header::AUTHORIZATION, format!("Bearer {}", clinic.token))
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(body))
            .unwrap()
    };
    let malformed = app
        .send(raw("application/json", b"{\"firstName\": ".to_vec()))
        .await;
    assert_eq!(
        (malformed.status, malformed.code()),
        (StatusCode::BAD_REQUEST, "bad_request")
    );
    let wrong_type = app.send(raw("text/plain", b"{}".to_vec())).await;
    assert_eq!(wrong_type.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(wrong_type.body["success"], false);
    let mut huge = br#"{"firstName": "A", "lastName": "B", "notes": ""#.to_vec();
    huge.extend(std::iter::repeat_n(b'x', 1024 * 1024 + 10));
    huge.extend(br#""}"#);
    let too_large = app.send(raw("application/json", huge)).await;
    assert_eq!(
        (too_large.status, too_large.code()),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
    );
    let bad_id = app.get("/api/v1/patients/not-a-uuid", &clinic.token).await;
    assert_eq!(
        (bad_id.status, bad_id.code()),
        (StatusCode::BAD_REQUEST, "bad_request")
    );
    let missing = app.get("/api/v1/nowhere", &clinic.token).await;
    assert_eq!(
        (missing.status, missing.code()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let not_allowed = app
        .call(
            Method::DELETE,
            "/api/v1/patients",
            Some(&clinic.token),
            None,
        )
        .await;
    assert_eq!(not_allowed.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(not_allowed.body["success"], false);
    let list = app.get("/api/v1/patients", &clinic.token).await;
    assert_eq!(list.body["pagination"]["total"], 0);
    app.cleanup().await;
}

/// A search among 10,000 patients is answered through the trigram index
/// (its scan count grows), and finds what testing each name, the email and
/// the phone of every patient finds.
#[tokio::test]
async fn a_search_among_many_patients_uses_the_search_index() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Search index").await;
    let mut db = app.clinic_admin(clinic.id).await;
    sqlx::query(
        "INSERT INTO patients (first_name, last_name, email, phone, deleted_at)
         SELECT 'Pat' || i, 'Name' || i % 1000, 'p' || i || '@example.fr',
                '06' || lpad(i::text, 8, '0'), CASE WHEN i % 50 = 0 THEN now() END
           FROM generate_series(1, 10000) i",
    )
    .execute(&mut db)
    .await
    .unwrap();
    sqlx::query("ANALYZE patients")
        .execute(&mut db)
        .await
        .unwrap();
    let index_scans = "SELECT COALESCE(SUM(idx_scan), 0)::bigint FROM pg_stat_user_indexes
                        WHERE indexrelname = 'patients_search_idx'";
    let before: i64 = sqlx::query_scalar(index_scans)
        .fetch_one(&mut db)
        .await
        .unwrap();
    for search in [
        "name42",
        "Pat1234 Name234",
        "name234 pat1234",
        "00001234",
        "p77@",
        "pat10000",
    ] {
        let found = app
            .get(
                &format!(
                    "/api/v1/patients?search={}&limit=5",
                    search.replace(' ', "%20")
                ),
                &clinic.token,
            )
            .await;
        let scanned: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM patients WHERE deleted_at IS NULL AND (
                first_name ILIKE $1 OR last_name ILIKE $1 OR email ILIKE $1 OR phone ILIKE $1
                OR first_name || ' ' || last_name ILIKE $1
                OR last_name || ' ' || first_name ILIKE $1)",
        )
        .bind(format!("%{search}%"))
        .fetch_one(&mut db)
        .await
        .unwrap();
        assert_eq!(found.body["pagination"]["total"], scanned, "{search}");
        assert_eq!(
            found.data().as_array().unwrap().len() as i64,
            scanned.min(5),
            "{search}"
        );
    }
    // A backend reports its statistics within a second of going idle.
    let mut after = before;
    for _ in 0..100 {
        after = sqlx::query_scalar(index_scans)
            .fetch_one(&mut db)
            .await
            .unwrap();
        if after > before {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(after > before, "the search index was not scanned");
    app.cleanup().await;
}
