//! The platform views of a `super_admin`: clinics searched by name or
//! email, renamed and given a new email; staff accounts of every clinic;
//! the platform audit log, filtered. A clinic admin gets 403 on each.

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp};

/// A logged-in platform `super_admin`'s access token.
async fn super_admin(app: &TestApp) -> String {
    let email = format!("root-{}@example.fr", app.prefix);
    medicalpro::platform::create_super_admin(
        &app.state.databases.central,
        &email,
        "platform password".into(),
    )
    .await
    .unwrap();
    let login = app.login(&email, "platform password").await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    login.data()["accessToken"].as_str().unwrap().to_owned()
}

fn ids(list: &Value) -> Vec<String> {
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_super_admin_searches_renames_and_readdresses_clinics() {
    let app = spawn_app().await;
    let root = super_admin(&app).await;
    let pasteur = app.register_clinic("Cabinet Pasteur").await;
    let curie = app.register_clinic("Centre Curie").await;

    // By name, any case; by email; the email in each item.
    let by_name = app.get("/api/v1/admin/clinics?search=pAsTeUr", &root).await;
    assert_eq!(by_name.status, StatusCode::OK, "{}", by_name.body);
    assert_eq!(ids(&by_name.body), [pasteur.id.to_string()]);
    assert_eq!(by_name.body["pagination"]["total"], 1);
    assert_eq!(by_name.data()[0]["email"], pasteur.email);
    let local = curie.email.split('@').next().unwrap().to_uppercase();
    let by_email = app
        .get(&format!("/api/v1/admin/clinics?search={local}"), &root)
        .await;
    assert_eq!(ids(&by_email.body), [curie.id.to_string()]);
    let all = app.get("/api/v1/admin/clinics", &root).await;
    assert_eq!(all.body["pagination"]["total"], 2);
    let long = app
        .get(
            &format!("/api/v1/admin/clinics?search={}", "x".repeat(101)),
            &root,
        )
        .await;
    assert_eq!(long.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(long.detail_fields(), ["search"]);

    // Renamed: the list, the clinic's own view and its search see it.
    let path = format!("/api/v1/admin/clinics/{}", pasteur.id);
    let renamed = app
        .patch(&path, &root, json!({"name": "  Maison de santé Pasteur "}))
        .await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.body);
    assert_eq!(renamed.data()["name"], "Maison de santé Pasteur");
    assert_eq!(renamed.data()["email"], pasteur.email);
    let found = app.get("/api/v1/admin/clinics?search=maison", &root).await;
    assert_eq!(ids(&found.body), [pasteur.id.to_string()]);
    let own = app.get("/api/v1/clinic", &pasteur.token).await;
    assert!(
        own.body.to_string().contains("Maison de santé Pasteur"),
        "{}",
        own.body
    );

    // A new email; another clinic's (any case) is 409, a malformed one 422.
    let new_email = format!("accueil@{}.example.fr", app.prefix);
    let readdressed = app.patch(&path, &root, json!({"email": new_email})).await;
    assert_eq!(readdressed.status, StatusCode::OK, "{}", readdressed.body);
    assert_eq!(readdressed.data()["email"], new_email);
    let taken = app
        .patch(&path, &root, json!({"email": curie.email.to_uppercase()}))
        .await;
    assert_eq!(
        (taken.status, taken.code()),
        (StatusCode::CONFLICT, "email_taken")
    );
    // The clinic's own first admin may share its address.
    let own_admin = app
        .patch(&path, &root, json!({"email": pasteur.email}))
        .await;
    assert_eq!(own_admin.status, StatusCode::OK, "{}", own_admin.body);
    for (body, field) in [
        (json!({"email": "not an email"}), "email"),
        (json!({"name": ""}), "name"),
        (json!({}), "body"),
    ] {
        let refused = app.patch(&path, &root, body.clone()).await;
        assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(refused.detail_fields(), [field], "{body}");
    }
    let unknown = app.patch(&path, &root, json!({"phone": "+33 1"})).await;
    assert_eq!(unknown.status, StatusCode::UNPROCESSABLE_ENTITY);
    let missing = app
        .patch(
            &format!("/api/v1/admin/clinics/{}", uuid::Uuid::new_v4()),
            &root,
            json!({"name": "Nobody"}),
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);

    // The command line does the same, audited as such.
    let output = app
        .medicalpro_command()
        .args([
            "clinic",
            "update",
            &curie.id.to_string(),
            "--name",
            "Centre Marie Curie",
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let clash = app
        .medicalpro_command()
        .args([
            "clinic",
            "update",
            &curie.id.to_string(),
            "--email",
            &pasteur.email,
        ])
        .output()
        .unwrap();
    assert_eq!(clash.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&clash.stderr).contains("already exists"));
    let curie_view = app
        .get(&format!("/api/v1/admin/clinics/{}", curie.id), &root)
        .await;
    assert_eq!(curie_view.data()["name"], "Centre Marie Curie");

    // Every change is a platform event; filtered by action, by clinic.
    let updates = app
        .get("/api/v1/admin/audit?action=clinic.updated", &root)
        .await;
    assert_eq!(updates.status, StatusCode::OK, "{}", updates.body);
    let events = updates.data().as_array().unwrap();
    assert_eq!(updates.body["pagination"]["total"], 4, "{}", updates.body);
    assert!(events.iter().all(|e| e["action"] == "clinic.updated"));
    assert_eq!(events[0]["clinicId"], curie.id.to_string());
    assert_eq!(events[0]["details"]["via"], "command line");
    assert_eq!(events[1]["details"]["fields"], json!(["email"]));
    assert!(events[1]["actorUserId"].is_string());
    let of_pasteur = app
        .get(
            &format!(
                "/api/v1/admin/audit?action=clinic.updated&clinicId={}",
                pasteur.id
            ),
            &root,
        )
        .await;
    assert_eq!(of_pasteur.body["pagination"]["total"], 3);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_super_admin_lists_staff_across_clinics_and_reads_the_platform_audit() {
    let app = spawn_app().await;
    let root = super_admin(&app).await;
    let a = app.register_clinic("Clinic Alpha").await;
    let b = app.register_clinic("Clinic Beta").await;
    let doctor = app
        .post(
            "/api/v1/users",
            &b.token,
            json!({"email": format!("doctor@{}.example.fr", app.prefix), "password": "long enough",
                   "firstName": "Jean", "lastName": "Bernard", "role": "doctor"}),
        )
        .await;
    assert_eq!(doctor.status, StatusCode::CREATED, "{}", doctor.body);
    app.create_patient(&a.token, "Paula", "Private").await;

    let staff = app.get("/api/v1/admin/users?limit=100", &root).await;
    assert_eq!(staff.status, StatusCode::OK, "{}", staff.body);
    assert_eq!(
        staff.body["pagination"]["total"], 4,
        "two admins, a doctor, the root"
    );
    let rows = staff.data().as_array().unwrap();
    let of = |email: &str| rows.iter().find(|r| r["email"] == email).unwrap().clone();
    let alpha = of(&a.email);
    assert_eq!(
        (
            &alpha["role"],
            &alpha["clinicId"],
            &alpha["clinicName"],
            &alpha["isActive"]
        ),
        (
            &json!("admin"),
            &json!(a.id),
            &json!("Clinic Alpha"),
            &json!(true)
        )
    );
    assert!(
        alpha["lastLoginAt"].is_null(),
        "registered, never logged in"
    );
    let login = app.login(&a.email, &a.password).await;
    assert_eq!(login.status, StatusCode::OK);
    let relisted = app.get("/api/v1/admin/users?search=alpha", &root).await;
    assert!(
        relisted.data()[0]["lastLoginAt"].is_string(),
        "{}",
        relisted.body
    );
    let bernard = of(&format!("doctor@{}.example.fr", app.prefix));
    assert_eq!(bernard["clinicName"], "Clinic Beta");
    assert_eq!(bernard["role"], "doctor");
    let root_row = of(&format!("root-{}@example.fr", app.prefix));
    assert!(root_row["clinicId"].is_null());
    assert!(root_row["lastLoginAt"].is_string());
    assert!(rows.iter().all(|r| r.get("passwordHash").is_none()));
    assert!(!staff.body.to_string().contains("Paula"));

    let beta = app.get("/api/v1/admin/users?search=beta", &root).await;
    assert_eq!(beta.body["pagination"]["total"], 2);
    let bernard_only = app.get("/api/v1/admin/users?search=BERNARD", &root).await;
    assert_eq!(ids(&bernard_only.body), [bernard["id"].as_str().unwrap()]);
    let paged = app.get("/api/v1/admin/users?limit=1&offset=1", &root).await;
    assert_eq!(paged.data().as_array().unwrap().len(), 1);
    assert_eq!(paged.body["pagination"]["total"], 4);

    let provisioned = app
        .get("/api/v1/admin/audit?action=clinic.provisioned", &root)
        .await;
    assert_eq!(provisioned.status, StatusCode::OK, "{}", provisioned.body);
    assert_eq!(provisioned.body["pagination"]["total"], 2);
    let clinics: Vec<&Value> = provisioned
        .data()
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["clinicId"])
        .collect();
    assert_eq!(clinics, [&json!(b.id), &json!(a.id)], "newest first");
    let today = chrono::Utc::now().date_naive();
    let dated = app
        .get(
            &format!("/api/v1/admin/audit?action=clinic.provisioned&from={today}&to={today}"),
            &root,
        )
        .await;
    assert_eq!(dated.body["pagination"]["total"], 2);
    let later = app
        .get(
            &format!("/api/v1/admin/audit?from={}", today.succ_opt().unwrap()),
            &root,
        )
        .await;
    assert_eq!(later.body["pagination"]["total"], 0);
    let before = app
        .get("/api/v1/admin/audit?to=2001-01-01T00:00:00Z", &root)
        .await;
    assert_eq!(before.body["pagination"]["total"], 0);
    let of_b = app
        .get(
            &format!("/api/v1/admin/audit?clinicId={}&limit=100", b.id),
            &root,
        )
        .await;
    assert!(of_b
        .data()
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["clinicId"] == json!(b.id)));
    assert!(of_b
        .data()
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["action"] == "staff.created"));
    for (query, status) in [
        ("from=yesterday", StatusCode::BAD_REQUEST),
        ("clinicId=42", StatusCode::BAD_REQUEST),
        ("limit=0", StatusCode::BAD_REQUEST),
        ("colour=red", StatusCode::BAD_REQUEST),
    ] {
        let refused = app
            .get(&format!("/api/v1/admin/audit?{query}"), &root)
            .await;
        assert_eq!(refused.status, status, "{query}: {}", refused.body);
    }
    let long = app
        .get(
            &format!("/api/v1/admin/audit?action={}", "a".repeat(101)),
            &root,
        )
        .await;
    assert_eq!(long.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(long.detail_fields(), ["action"]);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clinic_admin_reaches_no_platform_view() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Not the platform").await;
    let path = format!("/api/v1/admin/clinics/{}", clinic.id);
    for (method, path, body) in [
        (
            Method::GET,
            "/api/v1/admin/clinics?search=not".to_owned(),
            None,
        ),
        (Method::PATCH, path, Some(json!({"name": "Mine now"}))),
        (Method::GET, "/api/v1/admin/users".to_owned(), None),
        (
            Method::GET,
            "/api/v1/admin/audit?action=clinic.updated".to_owned(),
            None,
        ),
    ] {
        let refused = app
            .call(method.clone(), &path, Some(&clinic.token), body)
            .await;
        assert_eq!(
            (refused.status, refused.code()),
            (StatusCode::FORBIDDEN, "forbidden"),
            "{method} {path}"
        );
    }
    let unchanged: String = sqlx::query_scalar("SELECT name FROM companies WHERE id = $1")
        .bind(clinic.id)
        .fetch_one(&app.state.databases.central)
        .await
        .unwrap();
    assert_eq!(unchanged, "Not the platform");
    app.cleanup().await;
}
