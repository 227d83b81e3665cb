//! Destructive operations run as the operator runs them (the real binary):
//! a backup never overwrites a file unless forced and is private to its
//! owner; a restore over a live clinic first says what it discards and
//! keeps a safety backup of it, which restores.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, SystemTime};

use axum::http::StatusCode;
use uuid::Uuid;

use crate::helpers::{spawn_app, TestApp};

fn medicalpro(app: &TestApp, args: &[&str]) -> Output {
    app.medicalpro_command()
        .args(args)
        .output()
        .expect("running medicalpro")
}

fn succeeded(output: &Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn scratch_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("medicalpro-safe-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

async fn patients(app: &TestApp, token: &str) -> u64 {
    let listed = app.get("/api/v1/patients", token).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    listed.body["pagination"]["total"].as_u64().unwrap()
}

/// `patients  3  2  1`: the table's row for `table`, as numbers.
fn counts(printed: &str, table: &str) -> Vec<String> {
    let row = printed
        .lines()
        .find(|line| line.split_whitespace().next() == Some(table))
        .unwrap_or_else(|| panic!("no row for {table} in: {printed}"));
    row.split_whitespace().skip(1).map(str::to_owned).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_is_private_and_never_overwrites_a_file_unless_forced() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Careful").await;
    let id = clinic.id.to_string();
    let dir = scratch_dir();
    let file = dir.join("clinic.dump");
    let path = file.to_str().unwrap();
    succeeded(&medicalpro(
        &app,
        &["backup", "--clinic", &id, "--out", path],
    ));
    assert_eq!(mode(&file), 0o600);
    let first = std::fs::read(&file).unwrap();

    let again = medicalpro(&app, &["backup", "--clinic", &id, "--out", path]);
    assert!(!again.status.success());
    let said = String::from_utf8_lossy(&again.stderr);
    assert!(
        said.contains(path) && said.contains("already exists") && said.contains("--force"),
        "{said}"
    );
    assert_eq!(std::fs::read(&file).unwrap(), first, "left as it was");
    assert!(!dir.join("clinic.dump.partial").exists());

    let forced = ["backup", "--clinic", &id, "--out", path, "--force"];
    succeeded(&medicalpro(&app, &forced));
    let second = std::fs::read(&file).unwrap();
    assert!(second.starts_with(b"MPBACKUP\x01"));
    assert_ne!(second, first, "replaced by a new backup");
    assert_eq!(mode(&file), 0o600);

    // A readable file in the way is replaced by a private one.
    let open = dir.join("open.dump");
    std::fs::write(&open, b"old").unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).unwrap();
    let open_path = open.to_str().unwrap();
    succeeded(&medicalpro(
        &app,
        &["backup", "--clinic", &id, "--out", open_path, "--force"],
    ));
    assert_eq!(mode(&open), 0o600);

    let all = dir.join("all");
    succeeded(&medicalpro(
        &app,
        &["backup", "--all", "--dir", all.to_str().unwrap()],
    ));
    let written: Vec<PathBuf> = std::fs::read_dir(&all)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    // The clinic, central and the manifest.
    assert_eq!(written.len(), 3, "{written:?}");
    for file in &written {
        assert_eq!(mode(file), 0o600, "{}", file.display());
    }
    std::fs::remove_dir_all(&dir).unwrap();
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_over_a_live_clinic_shows_what_is_lost_and_keeps_a_safety_backup() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Restored over").await;
    let other = app.register_clinic("Bystander").await;
    app.create_patient(&other.token, "Rosalind", "Franklin")
        .await;
    let id = clinic.id.to_string();
    for (first, last) in [("Marie", "Curie"), ("Louis", "Pasteur")] {
        app.create_patient(&clinic.token, first, last).await;
    }
    let dir = scratch_dir();
    let file = dir.join("clinic.dump");
    succeeded(&medicalpro(
        &app,
        &["backup", "--clinic", &id, "--out", file.to_str().unwrap()],
    ));
    // Since the backup: a patient the restore will lose.
    app.create_patient(&clinic.token, "Ada", "Lovelace").await;
    assert_eq!(patients(&app, &clinic.token).await, 3);
    // Safety backups of earlier restores: one past the 7 days, one not,
    // and a file that is not one.
    let safety = dir.join("safety");
    std::fs::create_dir(&safety).unwrap();
    let day = Duration::from_secs(24 * 60 * 60);
    let expired = safety.join(format!("{id}-20260101T000000.000Z-before-restore.dump"));
    let recent = safety.join(format!("{id}-20260102T000000.000Z-before-restore.dump"));
    let unrelated = safety.join("notes.txt");
    for (path, age) in [
        (&expired, 8 * day),
        (&recent, 2 * day),
        (&unrelated, 30 * day),
    ] {
        let written = std::fs::File::create(path).unwrap();
        written.set_modified(SystemTime::now() - age).unwrap();
    }

    let restored = succeeded(&medicalpro(
        &app,
        &[
            "restore",
            "--clinic",
            &id,
            "--from",
            file.to_str().unwrap(),
            "--force",
        ],
    ));
    // Said before it was done: live rows against the backup's.
    let announced = restored.find("patients").expect("the table is printed");
    assert!(
        announced < restored.find("restored into").unwrap(),
        "{restored}"
    );
    assert_eq!(counts(&restored, "patients"), ["3", "2", "1"], "{restored}");
    let trail = counts(&restored, "audit_events");
    assert!(
        trail[0].parse::<i64>().unwrap() > trail[1].parse::<i64>().unwrap(),
        "{restored}"
    );
    assert_eq!(patients(&app, &clinic.token).await, 2);

    let copies: Vec<PathBuf> = std::fs::read_dir(&safety)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| ![&recent, &unrelated].contains(&path))
        .collect();
    assert_eq!(copies.len(), 1, "the expired copy is purged: {copies:?}");
    let copy = &copies[0];
    assert!(
        restored.contains(&format!(
            "safety backup of the live database: {}",
            copy.display()
        )),
        "{restored}"
    );
    assert!(recent.exists() && unrelated.exists());
    assert_eq!(mode(copy), 0o600);
    assert!(std::fs::read(copy).unwrap().starts_with(b"MPBACKUP\x01"));

    // The safety backup brings the live database back, patient included.
    let undone = succeeded(&medicalpro(
        &app,
        &[
            "restore",
            "--clinic",
            &id,
            "--from",
            copy.to_str().unwrap(),
            "--force",
        ],
    ));
    assert_eq!(counts(&undone, "patients"), ["2", "3", "0"], "{undone}");
    assert_eq!(patients(&app, &clinic.token).await, 3);
    let searched = app
        .get("/api/v1/patients?search=Lovelace", &clinic.token)
        .await;
    assert_eq!(searched.body["pagination"]["total"], 1, "{}", searched.body);
    assert_eq!(
        patients(&app, &other.token).await,
        1,
        "the other clinic is untouched"
    );
    std::fs::remove_dir_all(&dir).unwrap();
    app.cleanup().await;
}
