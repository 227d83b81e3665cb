//! The compliance commands, run as the operator runs them: the real binary
//! against the test cluster.

use std::io::Write;
use std::process::{Output, Stdio};

use axum::http::StatusCode;

use crate::helpers::{spawn_app, TestApp};

fn medicalpro(app: &TestApp, args: &[&str], stdin: &str) -> Output {
    let mut child = app
        .medicalpro_command()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running medicalpro");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_exits_non_zero_on_a_broken_chain_and_names_the_row() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Command line").await;
    let patient = app.create_patient(&clinic.token, "Dora", "Verify").await;
    app.get(&format!("/api/v1/patients/{patient}"), &clinic.token)
        .await;
    let id = clinic.id.to_string();

    let intact = medicalpro(&app, &["audit", "verify", "--clinic", &id], "");
    assert!(
        intact.status.success(),
        "{}",
        String::from_utf8_lossy(&intact.stderr)
    );
    assert!(String::from_utf8_lossy(&intact.stdout).contains("intact"));

    let mut db = app.clinic_admin(clinic.id).await;
    sqlx::raw_sql("ALTER TABLE audit_events DISABLE TRIGGER USER; UPDATE audit_events SET action = 'list' WHERE id = 2;")
        .execute(&mut db)
        .await
        .unwrap();
    let broken = medicalpro(&app, &["audit", "verify", "--all", "--json"], "");
    assert_eq!(broken.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&broken.stdout).unwrap();
    assert_eq!(report[0]["broken"]["id"], 2);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_super_admin_is_created_from_the_command_line() {
    let app = spawn_app().await;
    let email = format!("ops-{}@example.fr", app.prefix);
    let created = medicalpro(
        &app,
        &["user", "create-super-admin", "--email", &email],
        "a long platform password\n",
    );
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let login = app.login(&email, "a long platform password").await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    assert_eq!(login.data()["user"]["role"], "super_admin");
    let again = medicalpro(
        &app,
        &["user", "create-super-admin", "--email", &email],
        "another password\n",
    );
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    let short = medicalpro(
        &app,
        &["user", "create-super-admin", "--email", "x@example.fr"],
        "short\n",
    );
    assert!(!short.status.success());
    app.cleanup().await;
}

async fn exists(app: &TestApp, sql: &str, name: &str) -> bool {
    let mut admin = app.admin_connection("postgres").await;
    sqlx::query_scalar(sql)
        .bind(name)
        .fetch_one(&mut admin)
        .await
        .unwrap()
}

/// A clinic that never held patient data is deleted: its database and both
/// roles are gone, its staff accounts too (the admin's email registers
/// again), and central keeps a tombstone without its name or email.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clinic_delete_drops_an_empty_clinic_and_frees_its_email() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Abandoned trial").await;
    let id = clinic.id.to_string();
    let database = app.clinic_database(clinic.id);
    let owner = format!("{}_owner_{}", app.prefix, clinic.id.simple());
    let pg_database = "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)";
    let pg_roles = "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)";
    assert!(exists(&app, pg_roles, &owner).await);

    let deleted = medicalpro(&app, &["clinic", "delete", &id], "");
    assert!(
        deleted.status.success(),
        "{}",
        String::from_utf8_lossy(&deleted.stderr)
    );
    assert!(!exists(&app, pg_database, &database).await);
    assert!(!exists(&app, pg_roles, &database).await);
    assert!(!exists(&app, pg_roles, &owner).await);
    let central = &app.state.databases.central;
    let (name, email, deleted_at): (String, String, Option<chrono::DateTime<chrono::Utc>>) =
        sqlx::query_as("SELECT name, email, deleted_at FROM companies WHERE id = $1")
            .bind(clinic.id)
            .fetch_one(central)
            .await
            .unwrap();
    assert_eq!((name.as_str(), email.as_str()), ("", id.as_str()));
    assert!(deleted_at.is_some());
    let staff: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE company_id = $1")
        .bind(clinic.id)
        .fetch_one(central)
        .await
        .unwrap();
    assert_eq!(staff, 0);
    let events: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM audit_logs WHERE action = 'clinic.deleted' AND company_id = $1",
    )
    .bind(clinic.id)
    .fetch_one(central)
    .await
    .unwrap();
    assert_eq!(events, 1);
    let login = app.login(&clinic.email, &clinic.password).await;
    assert_eq!(login.status, StatusCode::UNAUTHORIZED, "{}", login.body);
    let again = app
        .register(serde_json::json!({
            "clinicName": "Second try", "email": clinic.email, "password": clinic.password,
            "firstName": "Claire", "lastName": "Admin"
        }))
        .await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.body);
    app.cleanup().await;
}

/// A clinic with a patient is not deleted: the command exits 1 saying so,
/// and the clinic keeps its database and goes on serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clinic_delete_refuses_a_clinic_with_a_patient() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("In use").await;
    app.create_patient(&clinic.token, "Paul", "Kept").await;
    let refused = medicalpro(&app, &["clinic", "delete", &clinic.id.to_string()], "");
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("holds patient data"), "{stderr}");
    assert!(stderr.contains("patients"), "{stderr}");
    let database = app.clinic_database(clinic.id);
    assert!(
        exists(
            &app,
            "SELECT datallowconn FROM pg_database WHERE datname = $1",
            &database
        )
        .await
    );
    let served = app
        .answers_within(
            "/api/v1/patients",
            &clinic.token,
            StatusCode::OK,
            std::time::Duration::from_secs(10),
        )
        .await;
    assert!(served.is_some(), "the clinic no longer serves");
    let login = app.login(&clinic.email, &clinic.password).await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    app.cleanup().await;
}

/// `migrate` names each clinic it moved (`<id> <from> -> <to>`) or failed
/// (`<id> FAILED: <error>`), then summarises; `--json` lists every clinic.
#[tokio::test]
async fn migrate_reports_each_clinic_migrated_or_failed() {
    let app = spawn_app().await;
    let behind = app.register_clinic("Behind").await;
    let broken = app.register_clinic("Broken").await;
    let current = app.register_clinic("Current").await;
    let latest = medicalpro::migrations::latest_version(&medicalpro::migrations::CLINIC);
    assert_eq!(latest, 9, "the newest migration is 9");
    // Behind: the newest migration undone. Broken: its ledger forgets it,
    // but the columns it adds are still there.
    for (clinic, undo) in [
        (behind.id, crate::hostile_tenant::UNDO_9),
        (broken.id, "DELETE FROM _sqlx_migrations WHERE version = 9;"),
    ] {
        let mut db = app.clinic_admin(clinic).await;
        sqlx::raw_sql(undo).execute(&mut db).await.unwrap();
    }

    let output = medicalpro(&app, &["migrate"], "");
    assert_eq!(output.status.code(), Some(1), "a clinic failed");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    let moved = format!("{} {} -> {latest}", behind.id, latest - 1);
    let failed = format!("{} FAILED: ", broken.id);
    let moved_at = lines.iter().position(|l| *l == moved);
    let failed_at = lines.iter().position(|l| l.starts_with(&failed));
    let summary_at = lines.iter().position(|l| l.starts_with("clinics: "));
    assert!(
        moved_at.is_some() && failed_at.is_some() && summary_at.is_some(),
        "{stdout}"
    );
    assert!(moved_at < summary_at && failed_at < summary_at, "{stdout}");
    assert!(
        lines[failed_at.unwrap()].contains("already exists"),
        "{stdout}"
    );
    assert!(!stdout.contains(&current.id.to_string()), "{stdout}");

    let output = medicalpro(&app, &["migrate", "--json"], "");
    assert_eq!(output.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let clinics = report["clinics"].as_array().unwrap();
    assert_eq!(clinics.len(), 3, "{report}");
    let of = |id: uuid::Uuid| {
        clinics
            .iter()
            .find(|c| c["clinicId"] == id.to_string())
            .unwrap_or_else(|| panic!("{id} missing from {report}"))
    };
    for (id, status) in [
        (behind.id, "unchanged"),
        (broken.id, "failed"),
        (current.id, "unchanged"),
    ] {
        let clinic = of(id);
        assert_eq!(clinic["status"], status, "{clinic}");
        assert!(clinic["fromVersion"].is_i64() && clinic["toVersion"].is_i64());
    }
    assert_eq!(of(behind.id)["toVersion"], latest);
    assert!(of(broken.id)["error"]
        .as_str()
        .unwrap()
        .contains("already exists"));
    assert!(of(current.id)["error"].is_null());
    app.cleanup().await;
}
