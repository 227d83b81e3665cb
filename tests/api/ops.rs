//! The operations commands (`medicalpro migrate`, `backup`, `restore`,
//! `doctor`, `keys rotate`, `clinic ...`) as library calls, against real
//! clinic databases.

use std::borrow::Cow;
use std::path::PathBuf;
use std::time::Instant;

use axum::http::StatusCode;
use medicalpro::app::build_state;
use medicalpro::compliance::verify_clinic;
use medicalpro::crypto::MasterKey;
use medicalpro::migrations;
use medicalpro::ops::backup::{backup_all, backup_clinic, WhenExists};
use medicalpro::ops::doctor::{self, Severity};
use medicalpro::ops::keys;
use medicalpro::ops::migrate::{self, MigrateOptions};
use medicalpro::ops::recovery;
use medicalpro::ops::restore::{restore, NewIdentity, RestoreError, RestoreOptions};
use medicalpro::ops::Fleet;
use medicalpro::platform::{self, ChangedBy};
use medicalpro::tenancy::naming::ClinicId;
use medicalpro::tenancy::provisioning::NewClinic;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use crate::helpers::{keyed, spawn_app, TestApp};

async fn fleet(app: &TestApp) -> Fleet {
    Fleet::attach(&app.settings)
        .await
        .expect("attaching to central")
}

fn scratch_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("medicalpro-ops-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The clinic migrations plus one of the test's own, numbered after them.
fn migrator_with_probe() -> &'static Migrator {
    let mut set: Vec<Migration> = migrations::CLINIC.iter().cloned().collect();
    set.push(Migration::new(
        9001,
        Cow::Borrowed("fleet probe"),
        MigrationType::Simple,
        Cow::Borrowed("CREATE TABLE fleet_probe (id integer PRIMARY KEY)"),
        false,
    ));
    Box::leak(Box::new(Migrator {
        migrations: Cow::Owned(set),
        ..Migrator::DEFAULT
    }))
}

async fn provision(app: &TestApp, count: usize) -> Vec<Uuid> {
    let mut ids = Vec::new();
    for n in 0..count {
        let clinic = NewClinic {
            name: format!("Clinic {n}"),
            email: format!("fleet-{n}-{}@example.fr", app.prefix),
            phone: None,
            country: "FR".into(),
        };
        let made = app.state.provisioner.provision(clinic, None).await.unwrap();
        ids.push(made.clinic_id.0);
    }
    ids
}

async fn recorded_versions(app: &TestApp) -> Vec<(Uuid, i64)> {
    sqlx::query_as("SELECT id, schema_version FROM companies ORDER BY id")
        .fetch_all(&app.state.databases.central)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_fleet_is_migrated_despite_one_failing_clinic_and_finished_by_a_second_run() {
    let app = spawn_app().await;
    let ids = provision(&app, 20).await;
    let broken = ids[7];
    // Sabotage: the table the new migration creates already exists there.
    let mut admin = app.clinic_admin(broken).await;
    sqlx::raw_sql("CREATE TABLE fleet_probe (id integer)")
        .execute(&mut admin)
        .await
        .unwrap();
    let fleet = fleet(&app).await;
    let options = MigrateOptions {
        jobs: 4,
        clinic_migrator: migrator_with_probe(),
        ..MigrateOptions::default()
    };

    let plan = migrate::run(
        &fleet,
        &MigrateOptions {
            dry_run: true,
            ..options.clone()
        },
        |_| {},
    )
    .await
    .unwrap();
    assert!(
        plan.clinics.iter().all(|o| o.applied == vec![9001]),
        "{plan:?}"
    );
    assert!(
        recorded_versions(&app)
            .await
            .iter()
            .all(|(_, v)| *v == released()),
        "a dry run changes nothing"
    );

    let started = Instant::now();
    let mut seen = Vec::new();
    let report = migrate::run(&fleet, &options, |p| seen.push((p.done, p.failed)))
        .await
        .unwrap();
    eprintln!(
        "migrate over 20 clinics (4 jobs, one new migration): {:?}",
        started.elapsed()
    );
    assert_eq!(seen.last(), Some(&(20, 1)));
    let failures: Vec<_> = report.failures().collect();
    assert_eq!(failures.len(), 1, "{report:?}");
    assert_eq!(failures[0].clinic_id, Some(broken));
    assert!(failures[0]
        .error
        .as_deref()
        .unwrap()
        .contains("already exists"));
    assert_eq!(
        report.clinics_by_version().into_iter().collect::<Vec<_>>(),
        vec![(released(), 1), (9001, 19)]
    );
    for (id, version) in recorded_versions(&app).await {
        assert_eq!(
            version,
            if id == broken { released() } else { 9001 },
            "{id}"
        );
    }
    // Migrations ran as each clinic's owner role: it owns what they made.
    let other = ids[0];
    let mut conn = app.clinic_admin(other).await;
    let owner: String = sqlx::query_scalar(
        "SELECT pg_get_userbyid(relowner)::text FROM pg_class WHERE relname = 'fleet_probe'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(owner, crate::hostile_tenant::owner_role(&app, other));

    // Fixed, then run again: only the broken clinic has work left.
    sqlx::raw_sql("DROP TABLE fleet_probe")
        .execute(&mut admin)
        .await
        .unwrap();
    let again = migrate::run(&fleet, &options, |_| {}).await.unwrap();
    assert_eq!(again.failures().count(), 0, "{again:?}");
    for outcome in &again.clinics {
        let expected: Vec<i64> = if outcome.clinic_id == Some(broken) {
            vec![9001]
        } else {
            vec![]
        };
        assert_eq!(outcome.applied, expected);
        assert_eq!(outcome.to_version, 9001);
    }
    assert!(recorded_versions(&app)
        .await
        .iter()
        .all(|(_, v)| *v == 9001));

    let dir = scratch_dir();
    let started = Instant::now();
    let backups = backup_all(&fleet, &dir, 2, WhenExists::Refuse, |_, _| {})
        .await
        .unwrap();
    eprintln!(
        "backup --all over 20 clinics (2 jobs): {:?}",
        started.elapsed()
    );
    assert_eq!(backups.len(), 20);
    assert!(backups.iter().all(|b| b.error.is_none()), "{backups:?}");
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        20,
        "one encrypted file each"
    );
    std::fs::remove_dir_all(&dir).unwrap();
    fleet.close().await;
    app.cleanup().await;
}

/// Row count and a hash of the content of every table of a database.
async fn snapshot(conn: &mut PgConnection) -> Vec<(String, i64, String)> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    let mut out = Vec::new();
    for table in tables {
        // A restore writes its own migration ledger: what it records, not when.
        let rows = if table == "_sqlx_migrations" {
            "(SELECT version, checksum, success FROM _sqlx_migrations)".to_owned()
        } else {
            format!("\"{table}\"")
        };
        let (count, hash): (i64, String) = sqlx::query_as(&format!(
            "SELECT COUNT(*), md5(COALESCE(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {rows} t"
        ))
        .fetch_one(&mut *conn)
        .await
        .unwrap();
        out.push((table, count, hash));
    }
    out
}

#[tokio::test]
async fn a_damaged_clinic_is_restored_identical_from_its_backup() {
    let app = spawn_app().await;
    let a = app.register_clinic("Clinic A").await;
    let b = app.register_clinic("Clinic B").await;
    for (first, last) in [
        ("Marie", "Curie"),
        ("Louis", "Pasteur"),
        ("Louise", "Bernard"),
    ] {
        app.create_patient(&a.token, first, last).await;
    }
    let b_patient = app.create_patient(&b.token, "Rosalind", "Franklin").await;
    assert_eq!(
        app.get("/api/v1/patients", &a.token).await.status,
        StatusCode::OK
    );
    let a_db = app.clinic_database(a.id);
    let mut a_conn = app.audit_trail(a.id).await;
    let before = snapshot(&mut a_conn).await;
    let mut b_conn = app.audit_trail(b.id).await;
    let b_before = snapshot(&mut b_conn).await;
    assert!(before.iter().any(|(t, n, _)| t == "patients" && *n == 3));
    assert!(before.iter().any(|(t, n, _)| t == "audit_events" && *n > 0));

    let fleet = fleet(&app).await;
    let dir = scratch_dir();
    let file = dir.join("a.dump");
    let made = backup_clinic(&fleet, ClinicId(a.id), &file, WhenExists::Refuse)
        .await
        .unwrap();
    let sealed = std::fs::read(&file).unwrap();
    assert_eq!(made.bytes, sealed.len() as u64);
    assert!(sealed.starts_with(b"MPBACKUP\x01"));
    // Encrypted: no patient name, no archive signature in the clear.
    for clear in [&b"Pasteur"[..], b"Curie", b"PGDMP"] {
        assert!(!sealed.windows(clear.len()).any(|w| w == clear));
    }

    // Damage: patients removed behind the application's back.
    sqlx::raw_sql("DELETE FROM patients WHERE last_name <> 'Curie'")
        .execute(&mut a_conn)
        .await
        .unwrap();
    a_conn.close().await.unwrap();
    let options = RestoreOptions {
        clinic: Some(ClinicId(a.id)),
        from: file.clone(),
        force: false,
        as_new_clinic: None,
        operator: None,
    };
    assert!(matches!(
        restore(&fleet, &options).await,
        Err(RestoreError::HasPatients(_))
    ));
    // Another clinic's backup is refused too.
    let b_file = dir.join("b.dump");
    backup_clinic(&fleet, ClinicId(b.id), &b_file, WhenExists::Refuse)
        .await
        .unwrap();
    let wrong = RestoreOptions {
        from: b_file,
        force: true,
        ..options.clone()
    };
    assert!(matches!(
        restore(&fleet, &wrong).await,
        Err(RestoreError::OtherClinic { .. })
    ));
    // And a changed, a truncated or a plain file, or one under another key:
    // refused before anything is changed.
    let mut flipped = sealed.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0xff;
    let other_key = Fleet::attach(&keyed(&app.settings, MasterKey::generate(), None))
        .await
        .unwrap();
    let plain = b"PGDMP\x01\x0e\x00 a plain dump".to_vec();
    for (name, bytes, fleet, error) in [
        ("flipped", flipped, &fleet, "could not be decrypted"),
        (
            "truncated",
            sealed[..sealed.len() - 1].to_vec(),
            &fleet,
            "could not be decrypted",
        ),
        ("plain", plain, &fleet, "not an encrypted MedicalPro backup"),
        (
            "whole",
            sealed.clone(),
            &other_key,
            "could not be decrypted",
        ),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        let refused = restore(
            fleet,
            &RestoreOptions {
                from: path,
                force: true,
                ..options.clone()
            },
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(refused.contains(error), "{name}: {refused}");
    }
    other_key.close().await;
    let mut a_conn = app.admin_connection(&a_db).await;
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM patients")
        .fetch_one(&mut a_conn)
        .await
        .unwrap();
    assert_eq!(left, 1, "nothing restored");
    a_conn.close().await.unwrap();

    // Restored by a process whose previous key is the backup's.
    let rotating = Fleet::attach(&keyed(
        &app.settings,
        MasterKey::generate(),
        Some(app.master_key()),
    ))
    .await
    .unwrap();
    let restored = restore(
        &rotating,
        &RestoreOptions {
            force: true,
            ..options.clone()
        },
    )
    .await
    .unwrap();
    rotating.close().await;
    assert_eq!(restored.clinic_id, a.id);
    // Recorded for `audit verify`, by the operating-system user.
    assert!(!restored.audit_chain.operator.is_empty());
    assert!(restored.audit_chain.head_id.is_some());
    let verified = verify_clinic(&app.state.databases, ClinicId(a.id))
        .await
        .unwrap();
    assert_eq!(verified.broken, None);
    assert_eq!(verified.restored, Some(restored.audit_chain.clone()));
    assert_eq!(
        restored.schema_version,
        migrations::latest_version(&migrations::CLINIC)
    );
    let mut a_conn = app.admin_connection(&a_db).await;
    assert_eq!(snapshot(&mut a_conn).await, before);
    assert_eq!(
        snapshot(&mut b_conn).await,
        b_before,
        "the other clinic is untouched"
    );
    let chain = medicalpro::clinic::audit::verify_chain(&mut a_conn)
        .await
        .unwrap();
    assert!(chain.broken.is_none(), "{chain:?}");
    // Laid out as provisioning leaves it.
    crate::hostile_tenant::assert_locked_down(&app, a.id).await;
    // The running application serves the restored database.
    let listed = app.get("/api/v1/patients", &a.token).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    assert_eq!(listed.body["pagination"]["total"], 3);
    let created = app.create_patient(&a.token, "Ada", "Lovelace").await;
    assert!(!created.is_empty());
    assert_eq!(
        app.get(&format!("/api/v1/patients/{b_patient}"), &b.token)
            .await
            .status,
        StatusCode::OK
    );
    std::fs::remove_dir_all(&dir).unwrap();
    fleet.close().await;
    app.cleanup().await;
}

#[tokio::test]
async fn a_backup_restored_as_a_new_clinic_is_a_separate_clinic() {
    let app = spawn_app().await;
    let a = app.register_clinic("Clinic A").await;
    app.create_patient(&a.token, "Marie", "Curie").await;
    let fleet = fleet(&app).await;
    let dir = scratch_dir();
    let file = dir.join("a.dump");
    backup_clinic(&fleet, ClinicId(a.id), &file, WhenExists::Refuse)
        .await
        .unwrap();

    let restored = restore(
        &fleet,
        &RestoreOptions {
            clinic: Some(ClinicId(a.id)),
            from: file,
            force: false,
            as_new_clinic: Some(NewIdentity::default()),
            operator: None,
        },
    )
    .await
    .unwrap();
    assert!(restored.new_clinic);
    let new = restored.clinic_id;
    assert_ne!(new, a.id);
    let details = platform::show_clinic(&fleet.databases.central, ClinicId(new))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(details.summary.status, "active");
    assert_eq!(details.summary.name, "Clinic A (restored)");
    assert!(
        details.summary.email.contains("+restored-"),
        "{}",
        details.summary.email
    );
    assert_eq!(
        details.summary.database.as_deref(),
        Some(app.clinic_database(new).as_str())
    );

    let (a_db, new_db) = (app.clinic_database(a.id), app.clinic_database(new));
    let new_password = app.clinic_password(new).await;
    let a_password = app.clinic_password(a.id).await;
    assert_ne!(new_password, a_password);
    let mut own = app
        .connect_as(&new_db, &new_password, &new_db)
        .await
        .unwrap();
    let (patients, settings_id): (i64, Uuid) = sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM patients), (SELECT clinic_id FROM clinic_settings)",
    )
    .fetch_one(&mut own)
    .await
    .unwrap();
    assert_eq!((patients, settings_id), (1, new));
    assert!(app.connect_as(&new_db, &new_password, &a_db).await.is_err());
    assert!(app.connect_as(&a_db, &a_password, &new_db).await.is_err());
    assert!(app
        .connect_as(&new_db, &new_password, &app.central_database())
        .await
        .is_err());
    // The original is untouched and still served.
    let listed = app.get("/api/v1/patients", &a.token).await;
    assert_eq!(listed.body["pagination"]["total"], 1);
    std::fs::remove_dir_all(&dir).unwrap();
    fleet.close().await;
    app.cleanup().await;
}

/// A second application on the same databases, with other settings.
async fn app_with(app: &TestApp, settings: medicalpro::config::Settings) -> TestApp {
    let state = build_state(&settings).await.unwrap();
    TestApp {
        router: medicalpro::http::router(state.clone()),
        state,
        settings,
        prefix: app.prefix.clone(),
    }
}

async fn close(other: TestApp) {
    other.state.pools.close_all().await;
    other.state.databases.close().await;
}

/// A rotation gives every clinic role a new password under the new key: the
/// old key with an old copy of central opens no clinic database any more,
/// servers given the new key serve every clinic, and a clinic whose stored
/// password was lost is repaired by it.
#[tokio::test]
async fn a_rotation_gives_every_clinic_role_a_new_password() {
    let app = spawn_app().await;
    let a = app.register_clinic("Clinic A").await;
    let b = app.register_clinic("Clinic B").await;
    app.create_patient(&a.token, "Marie", "Curie").await;
    app.create_patient(&b.token, "Louis", "Pasteur").await;
    let a_db = app.clinic_database(a.id);
    let a_role = a_db.clone();
    let old_password = app.clinic_password(a.id).await;
    // B's stored password is lost (sealed under a key nobody has).
    sqlx::query("UPDATE companies SET db_password_sealed = $2 WHERE id = $1")
        .bind(b.id)
        .bind(MasterKey::generate().seal(b"lost", b.id.as_bytes()))
        .execute(&app.state.databases.central)
        .await
        .unwrap();

    let new_key = MasterKey::generate();
    let fleet = fleet(&app).await;
    let rotation = keys::rotate(&fleet, &new_key).await.unwrap();
    assert_eq!((rotation.rotated, rotation.failed.len()), (2, 0));

    // The old password, from the old key and an old copy of central, is dead.
    assert!(app.connect_as(&a_role, &old_password, &a_db).await.is_err());
    let renewed = keyed(&app.settings, new_key.clone(), None);
    let fresh = app_with(&app, renewed).await;
    for clinic in [&a, &b] {
        let listed = fresh.get("/api/v1/patients", &clinic.token).await;
        assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
        assert_eq!(listed.body["pagination"]["total"], 1);
    }
    assert_ne!(fresh.clinic_password(a.id).await, old_password);
    close(fresh).await;

    // A server still on the old key alone cannot open the new seals (the
    // clinic is unavailable to it, a 503, not a server error)...
    let stale = app_with(&app, app.settings.clone()).await;
    let refused = stale.get("/api/v1/patients", &a.token).await;
    assert_eq!(
        refused.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        refused.body
    );
    assert_eq!(refused.code(), "clinic_unavailable");
    close(stale).await;
    // ...but one given the new key as MASTER_KEY_PREVIOUS can (rollout order).
    let rolling = keyed(&app.settings, MasterKey::generate(), Some(new_key.clone()));
    let rolling = app_with(&app, rolling).await;
    assert_eq!(
        rolling.get("/api/v1/patients", &b.token).await.status,
        StatusCode::OK
    );
    close(rolling).await;
    fleet.close().await;
    app.cleanup().await;
}

/// A rotation stopped between changing a role's password and recording it
/// (the password being rotated in is in central beside the old one): the
/// running server keeps serving the clinic on new connections, and running
/// the rotation again finishes it.
#[tokio::test]
async fn an_interrupted_rotation_strands_no_clinic_and_finishes_when_run_again() {
    let app = spawn_app().await;
    let a = app.register_clinic("Clinic A").await;
    app.create_patient(&a.token, "Marie", "Curie").await;
    let a_db = app.clinic_database(a.id);
    let a_role = a_db.clone();
    // Steps 1 and 2 of a rotation, by hand: the next password is stored,
    // then set on the role.
    let next = "a-password-being-rotated-in-0123456789";
    sqlx::query("UPDATE companies SET db_password_next_sealed = $2 WHERE id = $1")
        .bind(a.id)
        .bind(app.master_key().seal(next.as_bytes(), a.id.as_bytes()))
        .execute(&app.state.databases.central)
        .await
        .unwrap();
    let mut admin = app.admin_connection("postgres").await;
    sqlx::query(&format!("ALTER ROLE \"{a_role}\" PASSWORD '{next}'"))
        .execute(&mut admin)
        .await
        .unwrap();
    admin.close().await.unwrap();

    // The server's known password is refused on a new connection: it reads
    // central again and logs in with the one being rotated in.
    app.state.pools.close(ClinicId(a.id)).await;
    let before = app.state.pools.open_connections();
    let listed = app.get("/api/v1/patients", &a.token).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    assert!(app.state.pools.open_connections() > before);
    let fleet = fleet(&app).await;
    let unfinished = keys::unfinished(&fleet).await.unwrap();
    assert_eq!(unfinished, [a.id]);

    let rotation = keys::rotate(&fleet, &app.master_key()).await.unwrap();
    assert_eq!(rotation.rotated, 1);
    assert!(keys::unfinished(&fleet).await.unwrap().is_empty());
    // The password being rotated in was kept, not replaced again.
    assert_eq!(app.clinic_password(a.id).await, next);
    assert!(app.connect_as(&a_role, next, &a_db).await.is_ok());
    app.state.pools.close(ClinicId(a.id)).await;
    assert_eq!(
        app.get("/api/v1/patients", &a.token).await.status,
        StatusCode::OK
    );
    fleet.close().await;
    app.cleanup().await;
}

#[tokio::test]
async fn doctor_names_a_clinic_whose_database_is_gone() {
    let app = spawn_app().await;
    let a = app.register_clinic("Clinic A").await;
    let b = app.register_clinic("Clinic B").await;
    let healthy = doctor::run(&app.settings, 4).await;
    assert!(healthy.healthy(), "{healthy:?}");
    assert_eq!(
        healthy
            .findings
            .iter()
            .filter(|f| f.subject == "clinic" && f.severity == Severity::Ok)
            .count(),
        2
    );

    app.drop_clinic_database(b.id).await;
    let report = doctor::run(&app.settings, 4).await;
    assert!(!report.healthy());
    let failing: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Failure)
        .collect();
    assert_eq!(failing.len(), 1, "{report:?}");
    assert_eq!(failing[0].clinic_id, Some(b.id));
    assert!(
        failing[0].message.contains("does not exist"),
        "{}",
        failing[0].message
    );
    let a_finding = report
        .findings
        .iter()
        .find(|f| f.clinic_id == Some(a.id))
        .unwrap();
    assert_eq!(a_finding.severity, Severity::Ok);

    // With the wrong master key, no clinic password opens.
    let wrong = keyed(&app.settings, MasterKey::generate(), None);
    let report = doctor::run(&wrong, 4).await;
    let a_finding = report
        .findings
        .iter()
        .find(|f| f.clinic_id == Some(a.id))
        .unwrap();
    assert_eq!(a_finding.severity, Severity::Failure);
    assert!(
        a_finding.message.contains("MASTER_KEY"),
        "{}",
        a_finding.message
    );
    app.cleanup().await;
}

#[tokio::test]
async fn suspending_a_clinic_from_the_command_line_closes_it_and_is_audited() {
    let app = spawn_app().await;
    let a = app.register_clinic("Clinic A").await;
    let b = app.register_clinic("Clinic B").await;
    let fleet = fleet(&app).await;
    platform::set_clinic_active(
        &fleet.databases.central,
        ClinicId(a.id),
        false,
        ChangedBy::CommandLine,
    )
    .await
    .unwrap();
    // The command line is another process: the server learns within the
    // state cache's lifetime.
    let within = medicalpro::tenancy::state::STATE_TTL + std::time::Duration::from_millis(500);
    assert!(app
        .answers_within("/api/v1/patients", &a.token, StatusCode::FORBIDDEN, within)
        .await
        .is_some());
    let refused = app.get("/api/v1/patients", &a.token).await;
    assert_eq!(
        (refused.status, refused.code()),
        (StatusCode::FORBIDDEN, "clinic_inactive")
    );
    assert_eq!(
        app.get("/api/v1/patients", &b.token).await.status,
        StatusCode::OK
    );
    let listed = platform::list_clinics(&fleet.databases.central, None, None, 0)
        .await
        .unwrap()
        .0;
    let status = |id: Uuid| listed.iter().find(|c| c.id == id).unwrap().status.clone();
    assert_eq!(
        (status(a.id), status(b.id)),
        ("suspended".into(), "active".into())
    );
    assert!(listed
        .iter()
        .all(|c| c.size_bytes.unwrap_or(0) > 0 && c.schema_version == released()));

    platform::set_clinic_active(
        &fleet.databases.central,
        ClinicId(a.id),
        true,
        ChangedBy::CommandLine,
    )
    .await
    .unwrap();
    assert!(app
        .answers_within("/api/v1/patients", &a.token, StatusCode::OK, within)
        .await
        .is_some());
    let events: Vec<String> = sqlx::query_scalar(
        "SELECT action FROM audit_logs WHERE company_id = $1 AND action LIKE 'clinic.%' ORDER BY id",
    )
    .bind(a.id)
    .fetch_all(&app.state.databases.central)
    .await
    .unwrap();
    assert_eq!(
        events,
        ["clinic.provisioned", "clinic.suspended", "clinic.activated"]
    );
    let unknown = platform::set_clinic_active(
        &fleet.databases.central,
        ClinicId(Uuid::new_v4()),
        false,
        ChangedBy::CommandLine,
    );
    assert!(!unknown.await.unwrap());
    fleet.close().await;
    app.cleanup().await;
}

/// The newest clinic migration this build ships.
fn released() -> i64 {
    medicalpro::migrations::latest_version(&medicalpro::migrations::CLINIC)
}

/// A clinic of an earlier version (the chain extended by an insert trigger,
/// the clinic role inserting into it and owning `public`) is brought to
/// the current trail by `migrate`, its chain kept and extended.
/// How a server of the earlier release recorded an event: straight into
/// the chain, as the clinic role.
const OLD_STYLE_INSERT: &str =
    "INSERT INTO audit_events (id, occurred_at, action, resource_type, prev_hash, hash)
     VALUES (0, now(), 'read', 'patient', '', '')";

#[tokio::test]
async fn migrate_brings_an_earlier_audit_trail_to_sealing() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Earlier").await;
    let patient = app.create_patient(&clinic.token, "Olga", "Older").await;
    let database = app.clinic_database(clinic.id);
    let mut admin = app.admin_connection(&database).await;
    let earlier = format!(
        "DROP TRIGGER audit_events_divert ON audit_events;
         DROP FUNCTION audit_events_divert();
         DROP FUNCTION audit_events_append(uuid, text, text, text, uuid, uuid, text, text, text[], jsonb);
         DROP FUNCTION audit_events_seal(integer);
         DROP FUNCTION audit_events_chain_pending(integer);
         DROP TABLE audit_events_pending;
         {}
         GRANT SELECT, INSERT ON audit_events TO {database};
         GRANT EXECUTE ON FUNCTION audit_events_chain() TO {database};
         ALTER SCHEMA public OWNER TO pg_database_owner;",
        include_str!("fixtures/audit_trail_chained_by_trigger.sql")
    );
    sqlx::raw_sql(&earlier).execute(&mut admin).await.unwrap();
    let role_password = app.clinic_password(clinic.id).await;
    let mut role = app
        .connect_as(&database, &role_password, &database)
        .await
        .unwrap();
    // The earlier layout, as the clinic role had it: inserting into the chain.
    sqlx::raw_sql(OLD_STYLE_INSERT)
        .execute(&mut role)
        .await
        .unwrap();

    migrate::run(&fleet(&app).await, &MigrateOptions::default(), |_| {})
        .await
        .unwrap();
    app.state.pools.close(ClinicId(clinic.id)).await;

    // A server of the earlier release goes on inserting during the upgrade:
    // its event is recorded the current way.
    sqlx::raw_sql(OLD_STYLE_INSERT)
        .execute(&mut role)
        .await
        .unwrap();
    assert!(sqlx::raw_sql("DROP TABLE audit_events CASCADE")
        .execute(&mut role)
        .await
        .is_err());
    let read = app
        .get(&format!("/api/v1/patients/{patient}"), &clinic.token)
        .await;
    assert_eq!(read.status, StatusCode::OK);
    let report = verify_clinic(&app.state.databases, ClinicId(clinic.id))
        .await
        .unwrap();
    // The events before the upgrade and the read after it: one chain.
    assert_eq!(report.broken, None);
    let actions: Vec<String> = sqlx::query_scalar("SELECT action FROM audit_events ORDER BY id")
        .fetch_all(&mut admin)
        .await
        .unwrap();
    assert_eq!(actions.last().map(String::as_str), Some("read"));
    assert_eq!(report.events, actions.len() as i64);
    assert_eq!(
        actions.iter().filter(|a| a.as_str() == "read").count(),
        3,
        "{actions:?}"
    );
    app.cleanup().await;
}

/// A patient erased after a backup was made stays erased when that backup
/// is restored, over the clinic or as a new clinic: the erasure ledger in
/// central (no patient id in it) is re-applied before the clinic serves.
#[tokio::test]
async fn an_erasure_survives_the_restore_of_an_older_backup() {
    let app = spawn_app().await;
    let a = app.register_clinic("Clinic A").await;
    let gone = app.create_patient(&a.token, "Zebulon", "Erasable").await;
    app.create_patient(&a.token, "Eveline", "Kept").await;
    let fleet = fleet(&app).await;
    let dir = scratch_dir();
    let file = dir.join("before-erasure.dump");
    backup_clinic(&fleet, ClinicId(a.id), &file, WhenExists::Refuse)
        .await
        .unwrap();

    let erased = app
        .post(
            &format!("/api/v1/patients/{gone}/erase"),
            &a.token,
            serde_json::json!({}),
        )
        .await;
    assert_eq!(erased.status, StatusCode::OK, "{}", erased.body);
    let ledger: Vec<(Uuid, Vec<u8>)> =
        sqlx::query_as("SELECT company_id, patient_key FROM erasures")
            .fetch_all(&app.state.databases.central)
            .await
            .unwrap();
    assert_eq!(ledger.len(), 1);
    assert_eq!(ledger[0].0, a.id);
    let gone_id: Uuid = gone.parse().unwrap();
    assert!(!ledger[0].1.windows(16).any(|w| w == gone_id.as_bytes()));

    let patient_names = |token: String| {
        let app = &app;
        async move {
            let listed = app.get("/api/v1/patients?limit=100", &token).await;
            assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
            listed.body["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["lastName"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    let restored = restore(
        &fleet,
        &RestoreOptions {
            clinic: Some(ClinicId(a.id)),
            from: file.clone(),
            force: true,
            as_new_clinic: None,
            operator: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(restored.erasures_reapplied, 1);
    app.state.pools.close(ClinicId(a.id)).await;
    assert_eq!(patient_names(a.token.clone()).await, ["Kept"]);
    let mut db = app.audit_trail(a.id).await;
    let (names, reapplied): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM patients WHERE last_name = 'Erasable' OR first_name = 'Zebulon'),
                (SELECT count(*) FROM audit_events
                  WHERE action = 'erase' AND details->>'reappliedAfterRestore' = 'true')",
    )
    .fetch_one(&mut db)
    .await
    .unwrap();
    assert_eq!((names, reapplied), (0, 1));
    db.close().await.unwrap();

    // Restored as a new clinic, the source clinic's ledger applies too.
    let copy = restore(
        &fleet,
        &RestoreOptions {
            clinic: Some(ClinicId(a.id)),
            from: file,
            force: false,
            as_new_clinic: Some(NewIdentity::default()),
            operator: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(copy.erasures_reapplied, 1);
    let mut new_db = app
        .admin_connection(&app.clinic_database(copy.clinic_id))
        .await;
    let left: Vec<String> =
        sqlx::query_scalar("SELECT last_name FROM patients ORDER BY last_name COLLATE \"C\"")
            .fetch_all(&mut new_db)
            .await
            .unwrap();
    assert_eq!(left, ["Kept", "[erased]"]);
    new_db.close().await.unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    fleet.close().await;
    app.cleanup().await;
}

/// `backup --all` then `restore --platform` on an empty server (the second
/// test cluster: no role, no database of the first): every clinic serves
/// its rows to its staff, logging in with the same passwords, every audit
/// chain verifies, and the files are readable by their owner only.
#[tokio::test]
async fn the_platform_is_rebuilt_from_its_backup_on_an_empty_server() {
    use std::os::unix::fs::PermissionsExt;

    let app = spawn_app().await;
    let a = app.register_clinic("Clinic A").await;
    let b = app.register_clinic("Clinic B").await;
    app.create_patient(&a.token, "Marie", "Curie").await;
    app.create_patient(&b.token, "Louis", "Pasteur").await;
    let fleet = fleet(&app).await;
    let dir = scratch_dir().join("platform");
    let made = recovery::backup_platform(&fleet, &dir, 2, WhenExists::Refuse, |_, _| {})
        .await
        .unwrap();
    assert!(made.central_error.is_none(), "{:?}", made.central_error);
    assert!(made.manifest.is_some());
    let mode =
        |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    assert_eq!(
        files.len(),
        4,
        "two clinics, central, the manifest: {files:?}"
    );
    for file in &files {
        assert_eq!(mode(file), 0o600, "{}", file.display());
    }
    fleet.close().await;

    // The new server: the second cluster, empty of this platform; same
    // keys, same names.
    let settings = medicalpro::config::Settings {
        admin_url: crate::helpers::second_cluster().admin_url.clone(),
        ..app.settings.clone()
    };
    let restored = recovery::restore_platform(&settings, &dir).await.unwrap();
    assert_eq!(
        (restored.clinics.len(), restored.failed()),
        (2, 0),
        "{restored:?}"
    );
    let rebuilt = app_with(&app, settings.clone()).await;
    for (clinic, name) in [(&a, "Curie"), (&b, "Pasteur")] {
        let login = rebuilt.login(&clinic.email, &clinic.password).await;
        assert_eq!(login.status, StatusCode::OK, "{}", login.body);
        let token = login.data()["accessToken"].as_str().unwrap().to_owned();
        let listed = rebuilt.get("/api/v1/patients", &token).await;
        assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
        assert_eq!(listed.body["data"][0]["lastName"], name);
        let report = verify_clinic(&rebuilt.state.databases, ClinicId(clinic.id))
            .await
            .unwrap();
        assert_eq!(report.broken, None);
        // On the new server, with a new role password.
        let (name, port): (String, i32) =
            sqlx::query_as("SELECT db_name, db_port FROM companies WHERE id = $1")
                .bind(clinic.id)
                .fetch_one(&rebuilt.state.databases.central)
                .await
                .unwrap();
        assert_eq!(name, rebuilt.clinic_database(clinic.id));
        assert_eq!(port, i32::from(crate::helpers::second_cluster().port));
    }
    // A populated central is never overwritten.
    let refused = recovery::restore_platform(&settings, &dir)
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("already holds"), "{refused}");
    std::fs::remove_dir_all(dir.parent().unwrap()).unwrap();
    close(rebuilt).await;
    crate::helpers::cleanup_second_cluster(&app.prefix).await;
    app.cleanup().await;
}
