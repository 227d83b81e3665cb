//! The compliance commands, run as the operator runs them: the real binary
//! against the test cluster.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use axum::http::StatusCode;

use crate::helpers::{cluster, spawn_app, TestApp};

fn medicalpro(app: &TestApp, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_medicalpro"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", &cluster().admin_url)
        .env("DB_PREFIX", &app.prefix)
        .env(
            "JWT_SECRET",
            "a test secret that is long enough to sign tokens",
        )
        .env("MASTER_KEY", app.settings.master_key.to_base64())
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

#[tokio::test]
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

    let mut db = app.admin_connection(&app.clinic_database(clinic.id)).await;
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

#[tokio::test]
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
