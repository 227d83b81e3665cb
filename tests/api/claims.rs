//! Claims of the README that no other test backs: platform events, the
//! caches that keep requests off the central database, backups and
//! restores at the edges, the key-rotation warning.

use std::os::unix::fs::PermissionsExt;

use axum::http::{Method, StatusCode};
use medicalpro::ops::backup::{backup_all, backup_clinic, WhenExists};
use medicalpro::ops::doctor::{self, Severity};
use medicalpro::ops::restore::{restore, RestoreError, RestoreOptions};
use medicalpro::ops::Fleet;
use medicalpro::tenancy::naming::ClinicId;
use serde_json::json;
use sqlx::Connection;
use uuid::Uuid;

use crate::helpers::{keyed, spawn_app, TestApp};

async fn platform_events(app: &TestApp) -> Vec<String> {
    sqlx::query_scalar("SELECT action FROM audit_logs ORDER BY id")
        .fetch_all(&app.state.databases.central)
        .await
        .unwrap()
}

fn scratch_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("medicalpro-claims-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Logins (succeeded, failed, throttled), refresh-token reuse, super-admin
/// creation and verification anchors are platform events.
#[tokio::test]
async fn platform_events_record_logins_reuse_super_admins_and_anchors() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Events").await;
    assert_eq!(
        app.login(&clinic.email, &clinic.password).await.status,
        StatusCode::OK
    );
    for _ in 0..5 {
        app.login(&clinic.email, "wrong").await;
    }
    assert_eq!(
        app.login(&clinic.email, &clinic.password).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    let refresh = |token: String| {
        app.call(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(json!({"refreshToken": token})),
        )
    };
    assert_eq!(
        refresh(clinic.refresh_token.clone()).await.status,
        StatusCode::OK
    );
    assert_eq!(
        refresh(clinic.refresh_token.clone()).await.status,
        StatusCode::UNAUTHORIZED
    );
    medicalpro::platform::create_super_admin(
        &app.state.databases.central,
        &format!("root-{}@example.fr", app.prefix),
        "platform password".into(),
    )
    .await
    .unwrap();
    // Verifying a trail that holds events anchors its head.
    app.create_patient(&clinic.token, "Ana", "Anchored").await;
    medicalpro::compliance::verify_clinic(&app.state.databases, ClinicId(clinic.id))
        .await
        .unwrap();
    let events = platform_events(&app).await;
    for expected in [
        "clinic.provisioned",
        "login.succeeded",
        "login.failed",
        "login.throttled",
        "refresh.reuse_detected",
        "super_admin.created",
        "audit.anchored",
    ] {
        assert!(
            events.iter().any(|e| e == expected),
            "{expected} missing from {events:?}"
        );
    }
    assert_eq!(
        events.iter().filter(|e| *e == "login.failed").count(),
        5,
        "{events:?}"
    );
    app.cleanup().await;
}

/// Once a clinic and an account are cached, requests do not need the
/// central database: with it gone, they keep being served until the
/// caches expire.
#[tokio::test]
async fn requests_do_not_query_the_central_database() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Off central").await;
    let patient = app.create_patient(&clinic.token, "Nina", "Nocentral").await;
    // Let the cached entries lapse, so that this read caches them afresh:
    // the requests below then have the caches' whole lifetime.
    tokio::time::sleep(
        medicalpro::tenancy::state::STATE_TTL + std::time::Duration::from_millis(100),
    )
    .await;
    app.get(&format!("/api/v1/patients/{patient}"), &clinic.token)
        .await;
    app.state.databases.central.close().await;
    let started = std::time::Instant::now();
    let read = app
        .get(&format!("/api/v1/patients/{patient}"), &clinic.token)
        .await;
    let listed = app.get("/api/v1/patients", &clinic.token).await;
    let created = app
        .post(
            "/api/v1/patients",
            &clinic.token,
            json!({"firstName": "Omar", "lastName": "Offline"}),
        )
        .await;
    assert!(
        started.elapsed() < medicalpro::tenancy::state::STATE_TTL,
        "too slow to prove anything"
    );
    assert_eq!(read.status, StatusCode::OK, "{}", read.body);
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    app.cleanup().await;
}

/// `template1` and `postgres` are closed to a clinic's login role, whose
/// connections are limited.
#[tokio::test]
async fn maintenance_databases_are_closed_and_connections_limited() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Limited").await;
    let role = app.clinic_database(clinic.id);
    let password = app.clinic_password(clinic.id).await;
    for database in ["template1", "postgres"] {
        let error = app
            .connect_as(&role, &password, database)
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains("permission denied"), "{database}: {error}");
    }
    let mut admin = app.admin_connection("postgres").await;
    let limit: i32 = sqlx::query_scalar("SELECT rolconnlimit FROM pg_roles WHERE rolname = $1")
        .bind(&role)
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert_eq!(
        limit as u32,
        medicalpro::tenancy::ddl::ROLE_CONNECTION_LIMIT
    );
    // The limit holds: one connection more than it is refused.
    let mut held = Vec::new();
    app.state.pools.close(ClinicId(clinic.id)).await;
    for _ in 0..limit {
        held.push(app.connect_as(&role, &password, &role).await.unwrap());
    }
    let over = app.connect_as(&role, &password, &role).await;
    assert!(
        over.as_ref()
            .err()
            .is_some_and(|e| e.to_string().contains("too many connections")),
        "{:?}",
        over.err()
    );
    for conn in held {
        conn.close().await.unwrap();
    }
    admin.close().await.unwrap();
    app.cleanup().await;
}

/// A backup is private (mode 0600) and leaves no partial
/// file; `backup --all` goes on past a clinic that fails.
#[tokio::test]
async fn backups_are_private_and_all_goes_on_past_a_failure() {
    let app = spawn_app().await;
    let a = app.register_clinic("Backed A").await;
    let b = app.register_clinic("Backed B").await;
    let c = app.register_clinic("Backed C").await;
    let fleet = Fleet::attach(&app.settings).await.unwrap();
    let dir = scratch_dir();
    let file = dir.join("a.dump");
    backup_clinic(&fleet, ClinicId(a.id), &file, WhenExists::Refuse)
        .await
        .unwrap();
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.contains("partial")), "{names:?}");

    app.drop_clinic_database(b.id).await;
    let all = dir.join("all");
    let results = backup_all(&fleet, &all, 2, WhenExists::Refuse, |_, _| {})
        .await
        .unwrap();
    let failed: Vec<Uuid> = results
        .iter()
        .filter(|r| r.error.is_some())
        .map(|r| r.clinic_id)
        .collect();
    assert_eq!(failed, [b.id]);
    let made: Vec<Uuid> = results
        .iter()
        .filter(|r| r.backup.is_some())
        .map(|r| r.clinic_id)
        .collect();
    assert_eq!(made.len(), 2);
    assert!(made.contains(&a.id) && made.contains(&c.id));
    fleet.close().await;
    std::fs::remove_dir_all(&dir).unwrap();
    app.cleanup().await;
}

/// A backup of an older schema is migrated forward by the restore (what the
/// newer migration creates is there after it) and the restore is a
/// platform event; a backup of a newer schema is refused.
#[tokio::test]
async fn restores_migrate_older_backups_forward_and_refuse_newer_ones() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Versions").await;
    let patient = app.create_patient(&clinic.token, "Olga", "Older").await;
    let database = app.clinic_database(clinic.id);
    let latest = medicalpro::migrations::latest_version(&medicalpro::migrations::CLINIC);
    // The clinic as the previous release left it: no migration 9.
    let mut admin = app.admin_connection(&database).await;
    crate::hostile_tenant::as_previous_release(&mut admin).await;
    assert_eq!(latest, 9, "the previous release is the one before 9");
    let fleet = Fleet::attach(&app.settings).await.unwrap();
    let dir = scratch_dir();
    let older = dir.join("older.dump");
    backup_clinic(&fleet, ClinicId(clinic.id), &older, WhenExists::Refuse)
        .await
        .unwrap();
    // A newer one: its ledger names a version this binary does not know.
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
         VALUES ($1, 'from the future', true, '\\x00', 0)",
    )
    .bind(latest + 100)
    .execute(&mut admin)
    .await
    .unwrap();
    admin.close().await.unwrap();
    let newer = dir.join("newer.dump");
    backup_clinic(&fleet, ClinicId(clinic.id), &newer, WhenExists::Refuse)
        .await
        .unwrap();
    let options = |from: std::path::PathBuf| RestoreOptions {
        clinic: Some(ClinicId(clinic.id)),
        from,
        force: true,
        as_new_clinic: None,
        operator: None,
    };
    let refused = restore(&fleet, &options(newer)).await;
    assert!(
        matches!(refused, Err(RestoreError::NewerSchema { backup, known })
            if backup == latest + 100 && known == latest),
        "{refused:?}"
    );
    let restored = restore(&fleet, &options(older)).await.unwrap();
    assert_eq!(
        (restored.backup_version, restored.schema_version),
        (latest - 1, latest)
    );
    let mut db = app.admin_connection(&database).await;
    let columns: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.columns
          WHERE table_name = 'clinic_settings' AND column_name IN ('siret', 'vat_number')",
    )
    .fetch_one(&mut db)
    .await
    .unwrap();
    assert_eq!(columns, 2);
    db.close().await.unwrap();
    let recorded: i64 = sqlx::query_scalar("SELECT schema_version FROM companies WHERE id = $1")
        .bind(clinic.id)
        .fetch_one(&app.state.databases.central)
        .await
        .unwrap();
    assert_eq!(recorded, latest);
    assert_eq!(
        platform_events(&app)
            .await
            .iter()
            .filter(|e| *e == "clinic.restored")
            .count(),
        1
    );
    app.state.pools.close(ClinicId(clinic.id)).await;
    let read = app
        .get(&format!("/api/v1/patients/{patient}"), &clinic.token)
        .await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.body);
    fleet.close().await;
    std::fs::remove_dir_all(&dir).unwrap();
    app.cleanup().await;
}

/// While `MASTER_KEY_PREVIOUS` is set and no clinic needs it any more,
/// `doctor` says it can be removed.
#[tokio::test]
async fn doctor_warns_while_a_previous_master_key_is_set() {
    let app = spawn_app().await;
    app.register_clinic("Rotating").await;
    let calm = doctor::run(&app.settings, 2).await;
    assert!(!calm
        .findings
        .iter()
        .any(|f| f.message.contains("MASTER_KEY_PREVIOUS")));
    let rotating = keyed(
        &app.settings,
        app.master_key(),
        Some(medicalpro::crypto::MasterKey::generate()),
    );
    let report = doctor::run(&rotating, 2).await;
    let warning = report
        .findings
        .iter()
        .find(|f| f.message.contains("MASTER_KEY_PREVIOUS"))
        .expect("a finding about MASTER_KEY_PREVIOUS");
    assert_eq!(warning.severity, Severity::Warning);
    assert!(report.healthy(), "a warning, not a failure: {report:?}");
    app.cleanup().await;
}

/// A staff account of `role` in `clinic`, logged in: its access token.
async fn staff_token(app: &TestApp, admin_token: &str, role: &str) -> String {
    let email = format!("{role}-{}@example.fr", Uuid::new_v4().simple());
    let created = app
        .post(
            "/api/v1/users",
            admin_token,
            json!({"email": email, "password": "password123", "firstName": "S",
                   "lastName": role, "role": role}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    app.login(&email, "password123").await.data()["accessToken"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Export and erasure are for admins and doctors only, and reach a
/// patient that was deleted (its data is held until erased).
#[tokio::test]
async fn gdpr_rights_are_for_admins_and_doctors_and_reach_deleted_patients() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Rights").await;
    let doctor = staff_token(&app, &clinic.token, "doctor").await;
    let patient = app.create_patient(&clinic.token, "Dora", "Deleted").await;
    assert_eq!(
        app.delete(&format!("/api/v1/patients/{patient}"), &clinic.token)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let export = format!("/api/v1/patients/{patient}/export");
    let erase = format!("/api/v1/patients/{patient}/erase");
    for role in ["secretary", "readonly"] {
        let token = staff_token(&app, &clinic.token, role).await;
        assert_eq!(app.get(&export, &token).await.code(), "forbidden", "{role}");
        assert_eq!(
            app.call(Method::POST, &erase, Some(&token), None)
                .await
                .code(),
            "forbidden",
            "{role}"
        );
    }
    let exported = app.get(&export, &doctor).await;
    assert_eq!(exported.status, StatusCode::OK, "{}", exported.body);
    assert!(exported.body.to_string().contains("Dora"));
    let erased = app.call(Method::POST, &erase, Some(&doctor), None).await;
    assert_eq!(erased.status, StatusCode::OK, "{}", erased.body);
    assert_eq!(
        app.get(&export, &clinic.token).await.status,
        StatusCode::NOT_FOUND
    );
    app.cleanup().await;
}

/// Reads `patient` on `instance`, one that runs no background sealer: the
/// read's event is committed pending (as every read's is, until a seal).
async fn read_leaving_its_event_pending(instance: &TestApp, token: &str, patient: &str) {
    let read = instance
        .get(&format!("/api/v1/patients/{patient}"), token)
        .await;
    assert_eq!(read.status, StatusCode::OK);
}

/// Events left pending are sealed before
/// `GET /audit` and before an export answer, on an instance that runs no
/// background sealer; a seal that fails leaves them pending, whole.
#[tokio::test]
async fn pending_events_are_sealed_before_audit_reads_and_survive_a_failed_seal() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Pending").await;
    let patient = app.create_patient(&clinic.token, "Pia", "Pending").await;
    // This instance runs no sealer task: only the reads themselves seal.
    let other = app.second_instance().await;
    read_leaving_its_event_pending(&other, &clinic.token, &patient).await;
    let mut checker = app.clinic_admin(clinic.id).await;
    assert_eq!(pending(&mut checker).await, 1);
    // A seal that fails (the chain refuses rows, by a constraint added by
    // hand) leaves the event pending.
    sqlx::raw_sql("ALTER TABLE audit_events ADD CONSTRAINT refuse_all CHECK (id < 0) NOT VALID")
        .execute(&mut checker)
        .await
        .unwrap();
    assert!(medicalpro::clinic::audit::seal(&mut checker).await.is_err());
    assert_eq!(pending(&mut checker).await, 1);
    sqlx::raw_sql("ALTER TABLE audit_events DROP CONSTRAINT refuse_all")
        .execute(&mut checker)
        .await
        .unwrap();
    // GET /audit seals first: the read is listed.
    let trail = other
        .get(
            &format!("/api/v1/audit?patientId={patient}&action=read"),
            &clinic.token,
        )
        .await;
    assert_eq!(trail.status, StatusCode::OK, "{}", trail.body);
    assert_eq!(trail.body["pagination"]["total"], 1, "{}", trail.body);
    assert_eq!(pending(&mut checker).await, 0);
    // The same for an export, with a new event left pending.
    read_leaving_its_event_pending(&other, &clinic.token, &patient).await;
    assert_eq!(pending(&mut checker).await, 1);
    let exported = other
        .get(&format!("/api/v1/patients/{patient}/export"), &clinic.token)
        .await;
    assert_eq!(exported.status, StatusCode::OK, "{}", exported.body);
    let reads = exported.data()["auditEvents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "read")
        .count();
    assert_eq!(reads, 2, "{}", exported.body);
    checker.close().await.unwrap();
    other.close_instance().await;
    app.cleanup().await;
}

/// A stopping server seals what its requests left pending before it
/// closes its connections (`app::shut_down`, run by `serve` after the
/// drain), on an instance that runs no background sealer.
#[tokio::test]
async fn a_stopping_server_seals_the_events_its_requests_left_pending() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Stopping").await;
    let patient = app.create_patient(&clinic.token, "Sam", "Stopping").await;
    let other = app.second_instance().await;
    read_leaving_its_event_pending(&other, &clinic.token, &patient).await;
    let mut checker = app.clinic_admin(clinic.id).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(pending(&mut checker).await, 1, "nothing sealed it yet");
    other.close_instance().await;
    assert_eq!(pending(&mut checker).await, 0, "sealed at shutdown");
    let sealed_read: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM audit_events WHERE action = 'read' AND resource_id = $1",
    )
    .bind(patient.parse::<Uuid>().unwrap())
    .fetch_one(&mut checker)
    .await
    .unwrap();
    assert_eq!(sealed_read, 1);
    checker.close().await.unwrap();
    app.cleanup().await;
}

async fn pending(conn: &mut sqlx::PgConnection) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM audit_events_pending")
        .fetch_one(conn)
        .await
        .unwrap()
}

/// While a restore puts its database in place, the clinic's requests get
/// the documented 503 `clinic_unavailable` (with `Retry-After`) or are
/// served, never an error; afterwards they are served from the restored
/// database.
#[tokio::test]
async fn requests_during_a_restore_are_served_or_told_to_retry() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Swapped").await;
    app.create_patient(&clinic.token, "Sam", "Swap").await;
    let fleet = Fleet::attach(&app.settings).await.unwrap();
    let dir = scratch_dir();
    let file = dir.join("swap.dump");
    backup_clinic(&fleet, ClinicId(clinic.id), &file, WhenExists::Refuse)
        .await
        .unwrap();
    app.create_patient(&clinic.token, "Lost", "Afterwards")
        .await;
    // The swap's first steps, by hand: no new connections to the database,
    // its sessions ended. A request then is told to retry.
    let database = app.clinic_database(clinic.id);
    let mut admin = app.admin_connection("postgres").await;
    let allow =
        |allowed: bool| format!("ALTER DATABASE \"{database}\" ALLOW_CONNECTIONS {allowed}");
    sqlx::raw_sql(&allow(false))
        .execute(&mut admin)
        .await
        .unwrap();
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
        .bind(&database)
        .execute(&mut admin)
        .await
        .unwrap();
    let closed = app.get("/api/v1/patients", &clinic.token).await;
    assert_eq!(
        closed.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        closed.body
    );
    assert_eq!(closed.code(), "clinic_unavailable");
    assert!(closed.headers.contains_key("retry-after"));
    sqlx::raw_sql(&allow(true))
        .execute(&mut admin)
        .await
        .unwrap();
    admin.close().await.unwrap();
    let restoring = std::sync::atomic::AtomicBool::new(true);
    let load = async {
        let mut statuses = Vec::new();
        while restoring.load(std::sync::atomic::Ordering::Relaxed) {
            let answer = app.get("/api/v1/patients", &clinic.token).await;
            let documented = answer.status == StatusCode::OK
                || (answer.status == StatusCode::SERVICE_UNAVAILABLE
                    && answer.code() == "clinic_unavailable"
                    && answer.headers.contains_key("retry-after"));
            assert!(documented, "{} {}", answer.status, answer.body);
            statuses.push(answer.status);
        }
        statuses
    };
    let restore_then_stop = async {
        let restored = restore(
            &fleet,
            &RestoreOptions {
                clinic: Some(ClinicId(clinic.id)),
                from: file.clone(),
                force: true,
                as_new_clinic: None,
                operator: None,
            },
        )
        .await;
        restoring.store(false, std::sync::atomic::Ordering::Relaxed);
        restored
    };
    let (statuses, restored) = futures::join!(load, restore_then_stop);
    restored.unwrap();
    assert!(!statuses.is_empty());
    // Served again, from the backup: the patient made after it is gone.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let listed = loop {
        let listed = app.get("/api/v1/patients", &clinic.token).await;
        if listed.status == StatusCode::OK || std::time::Instant::now() > deadline {
            break listed;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    assert_eq!(listed.body["pagination"]["total"], 1);
    fleet.close().await;
    std::fs::remove_dir_all(&dir).unwrap();
    app.cleanup().await;
}
