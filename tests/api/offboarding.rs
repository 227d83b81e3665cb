//! A clinic leaving: `clinic export` read back with nothing of MedicalPro,
//! `clinic close` and the destruction after its delay.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use axum::http::{Method, StatusCode};
use medicalpro::ops::offboarding;
use medicalpro::ops::Fleet;
use medicalpro::tenancy::naming::ClinicId;
use serde_json::Value;
use uuid::Uuid;

use crate::helpers::spawn_app;

fn scratch_dir() -> PathBuf {
    std::env::temp_dir().join(format!("medicalpro-export-{}", Uuid::new_v4().simple()))
}

/// Reads an export with the standard library and a JSON parser only, as a
/// clinic taking its data elsewhere would: every file the manifest names,
/// parsed, with its row count checked. Returns each file's JSON by name.
fn read_export(dir: &Path) -> Vec<(String, Value)> {
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    let mut files = Vec::new();
    for entry in manifest["files"].as_array().unwrap() {
        let name = entry["file"].as_str().unwrap().to_owned();
        let content: Value = serde_json::from_slice(&std::fs::read(dir.join(&name)).unwrap())
            .unwrap_or_else(|e| panic!("{name} is not JSON: {e}"));
        if let Some(rows) = content.as_array() {
            assert_eq!(rows.len() as u64, entry["rows"].as_u64().unwrap(), "{name}");
        }
        files.push((name, content));
    }
    files
}

fn file<'a>(files: &'a [(String, Value)], name: &str) -> &'a Value {
    &files.iter().find(|(n, _)| n == name).unwrap().1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exported_clinic_reads_back_without_medicalpro() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Cabinet Export").await;
    app.create_patient(&clinic.token, "Louis", "Pasteur").await;
    let gone = app
        .create_patient(&clinic.token, "Zebulon", "Erasable")
        .await;
    let erased = app
        .call(
            Method::POST,
            &format!("/api/v1/patients/{gone}/erase"),
            Some(&clinic.token),
            None,
        )
        .await;
    assert_eq!(erased.status, StatusCode::OK, "{}", erased.body);

    let dir = scratch_dir();
    let exported = app
        .medicalpro_command()
        .args(["clinic", "export", &clinic.id.to_string(), "--out"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        exported.status.success(),
        "{}",
        String::from_utf8_lossy(&exported.stderr)
    );

    let files = read_export(&dir);
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    for expected in [
        "patients.json",
        "appointments.json",
        "medical_records.json",
        "documents.json",
        "audit_events.json",
        "clinic.json",
        "staff.json",
        "erasures.json",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    let mut last_names: Vec<&str> = file(&files, "patients.json")
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["last_name"].as_str().unwrap())
        .collect();
    last_names.sort();
    assert_eq!(last_names, ["Pasteur", "[erased]"]);
    assert_eq!(file(&files, "clinic.json")["name"], "Cabinet Export");
    let staff = file(&files, "staff.json").as_array().unwrap();
    assert_eq!(staff.len(), 1);
    assert_eq!(staff[0]["email"], clinic.email.as_str());
    let ledger = file(&files, "erasures.json").as_array().unwrap();
    assert_eq!(ledger.len(), 1);
    assert_eq!(ledger[0]["patientKey"].as_str().unwrap().len(), 64);
    // No secret leaves: no password hash, no sealed credential.
    for (name, content) in &files {
        let text = content.to_string();
        assert!(!text.contains("argon2"), "{name} holds a password hash");
        assert!(!text.contains("password"), "{name} names a password");
    }
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    for (name, _) in &files {
        assert_eq!(mode(&dir.join(name)), 0o600, "{name}");
    }
    // An export never overwrites.
    let again = app
        .medicalpro_command()
        .args(["clinic", "export", &clinic.id.to_string(), "--out"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"));
    std::fs::remove_dir_all(&dir).unwrap();
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_clinic_is_destroyed_once_its_delay_has_passed() {
    let app = spawn_app().await;
    let leaving = app.register_clinic("Leaving").await;
    let staying = app.register_clinic("Staying").await;
    let pondering = app.register_clinic("Pondering").await;
    for clinic in [&leaving, &staying, &pondering] {
        app.create_patient(&clinic.token, "Marie", "Curie").await;
    }
    let fleet = Fleet::attach(&app.settings).await.unwrap();
    let dir = scratch_dir();
    let closed = offboarding::close_clinic(&fleet, ClinicId(leaving.id), &dir.join("leaving"), 0)
        .await
        .unwrap();
    assert!(closed
        .exported
        .files
        .iter()
        .any(|f| f.file == "patients.json" && f.rows == 1));
    offboarding::close_clinic(&fleet, ClinicId(pondering.id), &dir.join("pondering"), 30)
        .await
        .unwrap();

    let destroyed = offboarding::destroy_due(&fleet).await.unwrap();
    assert_eq!(destroyed.len(), 1);
    assert_eq!(
        (destroyed[0].clinic_id, &destroyed[0].error),
        (leaving.id, &None)
    );
    let mut admin = app.admin_connection("postgres").await;
    assert_eq!(
        remaining(&mut admin, &app.clinic_database(staying.id), staying.id).await,
        (1, 2)
    );
    assert_eq!(
        remaining(&mut admin, &app.clinic_database(leaving.id), leaving.id).await,
        (0, 0)
    );
    let central = &app.state.databases.central;
    let (name, email, staff, events): (String, String, i64, i64) = sqlx::query_as(
        "SELECT c.name, c.email,
                (SELECT count(*) FROM users WHERE company_id = c.id),
                (SELECT count(*) FROM audit_logs WHERE company_id = c.id AND action = 'clinic.destroyed')
           FROM companies c WHERE c.id = $1",
    )
    .bind(leaving.id)
    .fetch_one(central)
    .await
    .unwrap();
    assert!(
        !name.contains("Leaving") && !email.contains('@'),
        "{name} {email}"
    );
    assert_eq!((staff, events), (0, 1));
    // The others: one still serving, one suspended, waiting for its delay.
    assert_eq!(
        app.get("/api/v1/patients", &staying.token).await.status,
        StatusCode::OK
    );
    // Reactivating the pondering clinic cancels its destruction.
    medicalpro::central::companies::set_active(central, ClinicId(pondering.id), true)
        .await
        .unwrap();
    let scheduled: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT destroy_after FROM companies WHERE id = $1")
            .bind(pondering.id)
            .fetch_one(central)
            .await
            .unwrap();
    assert_eq!(scheduled, None);
    std::fs::remove_dir_all(&dir).unwrap();
    fleet.close().await;
    app.cleanup().await;
}

/// The databases named `database`, and the clinic's login (named as its
/// database) and owner roles, on the server.
async fn remaining(admin: &mut sqlx::PgConnection, database: &str, clinic: Uuid) -> (i64, i64) {
    sqlx::query_as(
        "SELECT (SELECT count(*) FROM pg_database WHERE datname = $1),
                (SELECT count(*) FROM pg_roles WHERE rolname = $1 OR rolname LIKE $2)",
    )
    .bind(database)
    .bind(format!("%\\_owner\\_{}", clinic.simple()))
    .fetch_one(admin)
    .await
    .unwrap()
}
