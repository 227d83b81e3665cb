//! A restore the audit trail accepts: `medicalpro restore` records the head
//! of the chain it puts in place, `audit verify` continues the chain from
//! it and says so (exit 0), an edit of a row after it is still a break
//! (exit 1), and `doctor` reports that break.

use std::process::Output;

use medicalpro::ops::doctor::{self, Severity};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::helpers::{spawn_app, TestApp};

fn medicalpro(app: &TestApp, args: &[&str]) -> Output {
    app.medicalpro_command()
        .args(args)
        .output()
        .expect("running medicalpro")
}

fn stdout(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The clinic findings of `doctor` that failed.
async fn doctor_failures(app: &TestApp, clinic: Uuid) -> Vec<String> {
    doctor::run(&app.settings, 2)
        .await
        .findings
        .into_iter()
        .filter(|f| f.clinic_id == Some(clinic) && f.severity == Severity::Failure)
        .map(|f| f.message)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_accepts_a_recorded_restore_but_not_an_edit_after_it() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Restored").await;
    let bystander = app.register_clinic("Bystander").await;
    let patient = app.create_patient(&clinic.token, "Rita", "Restore").await;
    let read = format!("/api/v1/patients/{patient}");
    app.get(&read, &clinic.token).await;
    let id = clinic.id.to_string();
    let dir = std::env::temp_dir().join(format!("medicalpro-chain-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("restored.dump");
    let file_name = file.to_string_lossy().into_owned();
    let backup = medicalpro(&app, &["backup", "--clinic", &id, "--out", &file_name]);
    assert!(backup.status.success(), "{}", stdout(&backup));

    // Events after the backup, anchored by a verification: the restore
    // takes them away, which used to read as tampering for ever.
    for _ in 0..3 {
        app.get(&read, &clinic.token).await;
    }
    let verified = medicalpro(&app, &["audit", "verify", "--clinic", &id]);
    assert!(verified.status.success(), "{}", stdout(&verified));
    let anchored: i64 = sqlx::query_scalar(
        "SELECT (details->>'lastId')::bigint FROM audit_logs
          WHERE company_id = $1 AND action = 'audit.anchored' ORDER BY id DESC LIMIT 1",
    )
    .bind(clinic.id)
    .fetch_one(&app.state.databases.central)
    .await
    .unwrap();

    let restored = medicalpro(
        &app,
        &[
            "restore",
            "--clinic",
            &id,
            "--from",
            &file_name,
            "--force",
            "--operator",
            "Jeanne Ops",
        ],
    );
    assert!(restored.status.success(), "{}", stdout(&restored));
    assert!(
        stdout(&restored).contains("chain continues from id"),
        "{}",
        stdout(&restored)
    );
    let (operator, recorded_file, sha256, head_id): (String, String, String, i64) = sqlx::query_as(
        "SELECT operator, backup_file, backup_sha256, head_id FROM audit_chain_restores
          WHERE company_id = $1",
    )
    .bind(clinic.id)
    .fetch_one(&app.state.databases.central)
    .await
    .unwrap();
    assert_eq!(operator, "Jeanne Ops");
    assert_eq!(recorded_file, file_name);
    let bytes = std::fs::read(&file).unwrap();
    assert_eq!(sha256, medicalpro::crypto::hex(&Sha256::digest(&bytes)));
    assert!(
        head_id < anchored,
        "the restored head {head_id} predates the anchor {anchored}"
    );

    // Verified: intact, the restore named for what it is, twice (the second
    // run checks against the anchor the first one left).
    for _ in 0..2 {
        let after = medicalpro(&app, &["audit", "verify", "--clinic", &id]);
        let text = stdout(&after);
        assert!(after.status.success(), "{text}");
        assert!(text.contains("intact"), "{text}");
        assert!(
            text.contains(&format!("restored from {file_name}")),
            "{text}"
        );
        assert!(text.contains("by Jeanne Ops"), "{text}");
        assert!(
            text.contains(&format!("chain continues from id {head_id}")),
            "{text}"
        );
    }
    let json = medicalpro(&app, &["audit", "verify", "--all", "--json"]);
    assert!(json.status.success(), "{}", stdout(&json));
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let mine = report
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["clinicId"] == id)
        .unwrap();
    assert_eq!(mine["restored"]["operator"], "Jeanne Ops");
    assert_eq!(mine["restored"]["headId"], head_id);
    assert!(doctor_failures(&app, clinic.id).await.is_empty());

    // New events after the restore, then one of them edited by the table's
    // owner (a superuser here) behind the triggers' back.
    app.get(&read, &clinic.token).await;
    app.get(&read, &clinic.token).await;
    let mut db = app.audit_trail(clinic.id).await;
    let edited: i64 = sqlx::query_scalar("SELECT max(id) FROM audit_events")
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert!(edited > head_id);
    sqlx::raw_sql(&format!(
        "ALTER TABLE audit_events DISABLE TRIGGER USER;
         UPDATE audit_events SET actor_role = 'readonly' WHERE id = {edited};
         ALTER TABLE audit_events ENABLE TRIGGER USER;"
    ))
    .execute(&mut db)
    .await
    .unwrap();

    let failures = doctor_failures(&app, clinic.id).await;
    assert!(
        failures
            .iter()
            .any(|m| m.contains(&format!("audit chain is BROKEN at id {edited}"))),
        "{failures:?}"
    );
    assert!(doctor_failures(&app, bystander.id).await.is_empty());
    let doctor = medicalpro(&app, &["doctor"]);
    assert_eq!(doctor.status.code(), Some(1), "{}", stdout(&doctor));
    assert!(stdout(&doctor).contains(&format!("audit chain is BROKEN at id {edited}")));

    let broken = medicalpro(&app, &["audit", "verify", "--clinic", &id]);
    let text = stdout(&broken);
    assert_eq!(broken.status.code(), Some(1), "{text}");
    assert!(text.contains("BROKEN"), "{text}");
    assert!(
        text.contains(&format!("id {edited}: content does not match its hash")),
        "{text}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
    app.cleanup().await;
}
