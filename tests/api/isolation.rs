//! The SPEC's isolation rules (section 4, 1 to 5), attacked directly.

use axum::http::{Method, StatusCode};
use base64::Engine;
use serde_json::json;
use sqlx::Connection;

use crate::helpers::spawn_app;

#[tokio::test]
async fn a_clinic_token_never_reaches_another_clinics_patients() {
    let app = spawn_app().await;
    let a = app.register_clinic("Clinic A").await;
    let b = app.register_clinic("Clinic B").await;
    let b_patient = app.create_patient(&b.token, "Bernard", "Secret").await;
    let path = format!("/api/v1/patients/{b_patient}");
    assert_eq!(app.get(&path, &a.token).await.status, StatusCode::NOT_FOUND);
    let patch = app
        .patch(&path, &a.token, json!({"lastName": "Stolen"}))
        .await;
    assert_eq!(patch.status, StatusCode::NOT_FOUND);
    let put = app
        .call(
            Method::PUT,
            &path,
            Some(&a.token),
            Some(json!({"lastName": "Stolen"})),
        )
        .await;
    assert_eq!(put.status, StatusCode::NOT_FOUND);
    assert_eq!(
        app.delete(&path, &a.token).await.status,
        StatusCode::NOT_FOUND
    );
    let listed = app.get("/api/v1/patients?search=Secret", &a.token).await;
    assert_eq!(listed.body["pagination"]["total"], 0);
    // B's patient is untouched.
    let still = app.get(&path, &b.token).await;
    assert_eq!(still.status, StatusCode::OK);
    assert_eq!(still.data()["lastName"], "Secret");
    app.cleanup().await;
}

#[tokio::test]
async fn clinic_roles_reach_their_own_database_only() {
    let app = spawn_app().await;
    let a = app.register_clinic("Role A").await;
    let b = app.register_clinic("Role B").await;
    let role_a = app.clinic_database(a.id);
    let password_a = app.clinic_password(a.id).await;
    // Control: the role does reach its own database with its password.
    let own = app.connect_as(&role_a, &password_a, &role_a).await;
    assert!(own.is_ok(), "{:?}", own.err());
    own.unwrap().close().await.unwrap();
    for other in [
        app.clinic_database(b.id),
        app.central_database(),
        "postgres".to_owned(),
    ] {
        let error = app.connect_as(&role_a, &password_a, &other).await.err();
        let message = error.map(|e| e.to_string()).unwrap_or_default();
        assert!(
            message.contains("permission denied"),
            "{role_a} reached {other}: {message}"
        );
    }
    // The role has no power beyond its database.
    let mut admin = app.admin_connection("postgres").await;
    let (superuser, createdb, createrole): (bool, bool, bool) = sqlx::query_as(
        "SELECT rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = $1",
    )
    .bind(&role_a)
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert_eq!((superuser, createdb, createrole), (false, false, false));
    app.cleanup().await;
}

#[tokio::test]
async fn the_stored_password_is_not_a_password() {
    let app = spawn_app().await;
    let a = app.register_clinic("Sealed").await;
    let role = app.clinic_database(a.id);
    let sealed = app.sealed_password(a.id).await;
    let real = app.clinic_password(a.id).await;
    assert!(
        !sealed.windows(real.len()).any(|w| w == real.as_bytes()),
        "plaintext inside the sealed value"
    );
    let candidates = [
        base64::engine::general_purpose::STANDARD.encode(&sealed),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&sealed),
        sealed
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>(),
        String::from_utf8_lossy(&sealed)
            .into_owned()
            .replace('\0', ""),
    ];
    for candidate in candidates {
        assert!(app.connect_as(&role, &candidate, &role).await.is_err());
    }
    app.cleanup().await;
}

#[tokio::test]
async fn central_holds_no_patient_data() {
    let app = spawn_app().await;
    let a = app.register_clinic("Central scan").await;
    let marker = "Zyxwvutsrq";
    let id = app.create_patient(&a.token, marker, "Qwertyuiop").await;
    app.patch(
        &format!("/api/v1/patients/{id}"),
        &a.token,
        json!({"notes": "Qwertyuiop notes"}),
    )
    .await;
    app.get(&format!("/api/v1/patients?search={marker}"), &a.token)
        .await;
    app.get(&format!("/api/v1/patients/{id}"), &a.token).await;
    let mut central = app.admin_connection(&app.central_database()).await;
    let columns: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text FROM information_schema.columns
          WHERE table_schema = 'public' AND data_type IN ('text', 'character varying', 'jsonb', 'character', 'bytea')",
    )
    .fetch_all(&mut central)
    .await
    .unwrap();
    assert!(columns.len() > 10, "scanned too few columns: {columns:?}");
    for (table, column) in columns {
        let hits: i64 = sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM \"{table}\" WHERE \"{column}\"::text ILIKE '%' || $1 || '%'
                OR \"{column}\"::text ILIKE '%' || $2 || '%' OR \"{column}\"::text ILIKE '%' || $3 || '%'"
        ))
        .bind(marker)
        .bind("Qwertyuiop")
        .bind(&id)
        .fetch_one(&mut central)
        .await
        .unwrap();
        assert_eq!(hits, 0, "patient data in central {table}.{column}");
    }
    // Control: the clinic database does hold it.
    let mut clinic = app.clinic_admin(a.id).await;
    let found: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM patients WHERE first_name = $1")
        .bind(marker)
        .fetch_one(&mut clinic)
        .await
        .unwrap();
    assert_eq!(found, 1);
    app.cleanup().await;
}

/// Suspension by the platform API: the instance that suspends refuses at
/// once; another instance on the same central (its state cached) refuses
/// within the cache's lifetime, and serves the clinic again as soon after
/// reactivation.
#[tokio::test]
async fn a_suspended_clinic_is_refused_by_every_instance() {
    let app = spawn_app().await;
    let other = app.second_instance().await;
    let a = app.register_clinic("Suspended").await;
    let b = app.register_clinic("Active").await;
    // Both instances have served A (and cached it as active).
    for instance in [&app, &other] {
        assert_eq!(
            instance.get("/api/v1/patients", &a.token).await.status,
            StatusCode::OK
        );
    }
    let email = format!("root-{}@example.fr", app.prefix);
    medicalpro::platform::create_super_admin(
        &app.state.databases.central,
        &email,
        "platform password".into(),
    )
    .await
    .unwrap();
    let root = app.login(&email, "platform password").await.data()["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let suspend = app
        .call(
            Method::POST,
            &format!("/api/v1/admin/clinics/{}/suspend", a.id),
            Some(&root),
            None,
        )
        .await;
    assert_eq!(suspend.status, StatusCode::OK, "{}", suspend.body);
    let refused = app.get("/api/v1/patients", &a.token).await;
    assert_eq!(
        (refused.status, refused.code()),
        (StatusCode::FORBIDDEN, "clinic_inactive")
    );
    let ttl = medicalpro::tenancy::state::STATE_TTL;
    let took = other
        .answers_within(
            "/api/v1/patients",
            &a.token,
            StatusCode::FORBIDDEN,
            ttl + std::time::Duration::from_millis(500),
        )
        .await;
    assert!(
        took.is_some(),
        "the other instance still serves A after {ttl:?}"
    );
    assert_eq!(
        other.login(&a.email, &a.password).await.code(),
        "clinic_inactive"
    );
    assert_eq!(
        other.get("/api/v1/patients", &b.token).await.status,
        StatusCode::OK
    );
    let activate = app
        .call(
            Method::POST,
            &format!("/api/v1/admin/clinics/{}/activate", a.id),
            Some(&root),
            None,
        )
        .await;
    assert_eq!(activate.status, StatusCode::OK, "{}", activate.body);
    assert_eq!(
        app.get("/api/v1/patients", &a.token).await.status,
        StatusCode::OK
    );
    let back = other
        .answers_within(
            "/api/v1/patients",
            &a.token,
            StatusCode::OK,
            ttl + std::time::Duration::from_millis(500),
        )
        .await;
    assert!(back.is_some(), "the other instance still refuses A");
    other.close_instance().await;
    app.cleanup().await;
}

#[tokio::test]
async fn an_unreachable_clinic_answers_503_and_others_keep_working() {
    let app = spawn_app().await;
    let a = app.register_clinic("Down").await;
    let b = app.register_clinic("Up").await;
    app.create_patient(&a.token, "Before", "Outage").await;
    let database = app.clinic_database(a.id);
    let mut admin = app.admin_connection("postgres").await;
    sqlx::raw_sql(&format!(
        "ALTER DATABASE \"{database}\" WITH ALLOW_CONNECTIONS false"
    ))
    .execute(&mut admin)
    .await
    .unwrap();
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
        .bind(&database)
        .execute(&mut admin)
        .await
        .unwrap();
    let down = app.get("/api/v1/patients", &a.token).await;
    assert_eq!(
        (down.status, down.code()),
        (StatusCode::SERVICE_UNAVAILABLE, "clinic_unavailable")
    );
    assert!(down.headers.contains_key("retry-after"));
    assert_eq!(
        app.get("/api/v1/patients", &b.token).await.status,
        StatusCode::OK
    );
    sqlx::raw_sql(&format!(
        "ALTER DATABASE \"{database}\" WITH ALLOW_CONNECTIONS true"
    ))
    .execute(&mut admin)
    .await
    .unwrap();
    let back = app.get("/api/v1/patients", &a.token).await;
    assert_eq!(back.status, StatusCode::OK, "{}", back.body);
    assert_eq!(back.body["pagination"]["total"], 1);
    app.cleanup().await;
}
