//! Several database servers: registering, listing and draining them, and
//! moving a clinic from one to another under load.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use medicalpro::compliance::verify_clinic;
use medicalpro::ops::moves::{self, MoveError, MoveOptions, Step};
use medicalpro::ops::{servers, Fleet};
use medicalpro::tenancy::ddl::TABLE_GRANTS;
use medicalpro::tenancy::naming::ClinicId;
use serde_json::json;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};
use uuid::Uuid;

use crate::helpers::{
    cleanup_second_cluster, cluster, second_cluster, spawn_app, TestApp, TestClinic,
};

async fn fleet_with_second_server(app: &TestApp) -> Fleet {
    let fleet = Fleet::open(&app.settings).await.expect("fleet");
    let added = servers::add(&fleet, "second", &second_cluster().admin_url, 100)
        .await
        .expect("adding the second server");
    assert_eq!(added.port, i32::from(second_cluster().port));
    assert_eq!(added.wal_level, "logical");
    fleet
}

async fn on_second(database: &str) -> PgConnection {
    let options: PgConnectOptions = second_cluster().admin_url.parse().unwrap();
    options.database(database).connect().await.unwrap()
}

/// Some patients, a practitioner and appointments.
async fn fill(app: &TestApp, clinic: &TestClinic) {
    let practitioner = app
        .post(
            "/api/v1/practitioners",
            &clinic.token,
            json!({"firstName": "Jean", "lastName": "Docteur"}),
        )
        .await
        .id();
    for hour in 8..12 {
        let patient = app.create_patient(&clinic.token, "Anne", "Patiente").await;
        let booked = app
            .post(
                "/api/v1/appointments",
                &clinic.token,
                json!({"patientId": patient, "practitionerId": practitioner,
                       "startAt": format!("2030-01-07T{hour:02}:00:00Z"),
                       "endAt": format!("2030-01-07T{hour:02}:30:00Z")}),
            )
            .await;
        assert_eq!(booked.status, StatusCode::CREATED, "{}", booked.body);
    }
}

async fn patients_named(conn: &mut PgConnection, first_name: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM public.patients WHERE first_name = $1")
        .bind(first_name)
        .fetch_one(conn)
        .await
        .unwrap()
}

async fn placement(app: &TestApp, clinic: Uuid) -> (Uuid, i32) {
    sqlx::query_as("SELECT db_server_id, db_port FROM companies WHERE id = $1")
        .bind(clinic)
        .fetch_one(&app.state.databases.central)
        .await
        .unwrap()
}

async fn database_exists(app: &TestApp, database: &str) -> bool {
    let mut admin = app.admin_connection("postgres").await;
    let exists = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(database)
        .fetch_one(&mut admin)
        .await
        .unwrap();
    let _ = admin.close().await;
    exists
}

#[tokio::test]
async fn servers_are_added_listed_and_drained() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Sur le primaire").await;
    let fleet = fleet_with_second_server(&app).await;
    let again = servers::add(&fleet, "again", &second_cluster().admin_url, 5).await;
    assert!(again.is_err(), "the same host and port twice");
    let wrong =
        second_cluster()
            .admin_url
            .replacen("medicalpro_admin:", "medicalpro_admin:wrong", 1);
    let refused = servers::add(&fleet, "third", &wrong, 5).await;
    assert!(refused.is_err());

    let listed = servers::list(&fleet).await.unwrap();
    assert_eq!(listed.len(), 2);
    let primary = listed.iter().find(|s| s.name == "primary").unwrap();
    assert_eq!(primary.clinics, 1);
    assert!(primary.size_bytes.unwrap() > 0);
    assert!(primary.max_connections.unwrap() > 0);
    let second = listed.iter().find(|s| s.name == "second").unwrap();
    assert_eq!((second.clinics, second.room), (0, 100));

    let drained = servers::drain(&fleet, "primary").await.unwrap();
    assert_eq!(drained.remaining.len(), 1);
    assert_eq!(drained.remaining[0].id, clinic.id);
    // A new clinic now goes to the second server.
    let next = app.register_clinic("Sur le second").await;
    let (server, port) = placement(&app, next.id).await;
    assert_eq!(server, second.id);
    assert_eq!(port, i32::from(second_cluster().port));
    let listed = servers::list(&fleet).await.unwrap();
    let primary = listed.iter().find(|s| s.name == "primary").unwrap();
    assert!(!primary.is_active);
    assert_eq!(primary.room, 0);
    assert!(servers::drain(&fleet, "nowhere").await.is_err());

    fleet.close().await;
    let prefix = app.prefix.clone();
    app.cleanup().await;
    cleanup_second_cluster(&prefix).await;
}

#[tokio::test]
async fn a_clinic_moves_to_another_server_while_it_serves() {
    let app = Arc::new(spawn_app().await);
    let clinic = app.register_clinic("Déménagement").await;
    fill(&app, &clinic).await;
    let fleet = fleet_with_second_server(&app).await;
    let database = app.clinic_database(clinic.id);

    // Writes, and reads in a loop of their own, through the router for the
    // whole move.
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (app, stop, token) = (app.clone(), stop.clone(), clinic.token.clone());
        tokio::spawn(async move {
            let mut writes = Vec::new();
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let written = app
                    .post(
                        "/api/v1/patients",
                        &token,
                        json!({"firstName": format!("Pendant{n}"), "lastName": "Move"}),
                    )
                    .await;
                let id = written.body["data"]["id"].as_str().map(str::to_owned);
                writes.push((written.status, written.code().to_owned(), id));
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            writes
        })
    };
    let reading = {
        let (app, stop, token) = (app.clone(), stop.clone(), clinic.token.clone());
        tokio::spawn(async move {
            let mut reads = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let read = app.get("/api/v1/patients?limit=5", &token).await;
                reads.push((read.status, read.code().to_owned()));
                let log = app.get("/api/v1/audit?limit=5", &token).await;
                reads.push((log.status, log.code().to_owned()));
            }
            reads
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let moved = moves::move_clinic(&fleet, &MoveOptions::new(ClinicId(clinic.id), "second"))
        .await
        .expect("the move");
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let writes = load.await.unwrap();
    let reads = reading.await.unwrap();

    // No write failed with anything but 503 clinic_unavailable; every read
    // was answered.
    for (status, code, _) in &writes {
        assert!(
            status.is_success()
                || (*status == StatusCode::SERVICE_UNAVAILABLE && code == "clinic_unavailable"),
            "a write answered {status} {code}"
        );
    }
    let refused = writes.iter().filter(|(s, _, _)| !s.is_success()).count();
    let refused_reads: Vec<_> = reads.iter().filter(|(s, _)| *s != StatusCode::OK).collect();
    eprintln!(
        "move: {:.2} s, writes frozen {} ms, steps {:?}; {} writes ({refused} answered 503), {} reads ({} not answered 200); rows {:?}",
        moved.seconds,
        moved.freeze_ms,
        moved.steps_ms,
        writes.len(),
        reads.len(),
        refused_reads.len(),
        moved.rows
    );
    assert!(
        refused_reads.is_empty(),
        "reads not answered 200: {refused_reads:?}"
    );
    assert!(
        reads.len() >= 40,
        "only {} reads during the move",
        reads.len()
    );
    assert!(writes.iter().any(|(s, _, _)| s.is_success()));

    // The placement names the second server; the source is kept aside.
    let (server, port) = placement(&app, clinic.id).await;
    let second_id = servers::find(&fleet, "second").await.unwrap().id;
    assert_eq!(
        (server, port),
        (second_id, i32::from(second_cluster().port))
    );
    assert!(!database_exists(&app, &database).await);
    let kept = moved.source_kept_as.clone().expect("source kept");
    assert!(database_exists(&app, &kept).await);
    assert_eq!(moved.to_server, "second");
    assert_eq!(moved.from_server.as_deref(), Some("primary"));

    // Every write answered 2xx is on the target.
    let mut target = on_second(&database).await;
    let ids: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM public.patients")
        .fetch_all(&mut target)
        .await
        .unwrap();
    for (_, _, id) in writes.iter().filter(|(s, _, _)| s.is_success()) {
        let id: Uuid = id.as_deref().unwrap().parse().unwrap();
        assert!(
            ids.contains(&id),
            "patient {id} answered 201 but is not on the target"
        );
    }
    assert!(ids.len() as i64 >= moved.rows["patients"]);
    assert_eq!(moved.rows["appointments"], 4);
    // No replication is left behind.
    let subscriptions: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_subscription WHERE subname = $1")
            .bind(format!("mp_move_{}", moved.move_id.simple()))
            .fetch_one(&mut target)
            .await
            .unwrap();
    assert_eq!(subscriptions, 0);
    let _ = target.close().await;
    let mut source = app.admin_connection("postgres").await;
    let slots: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_replication_slots WHERE database = $1")
            .bind(&kept)
            .fetch_one(&mut source)
            .await
            .unwrap();
    assert_eq!(slots, 0);
    let can_login: bool = sqlx::query_scalar("SELECT rolcanlogin FROM pg_roles WHERE rolname = $1")
        .bind(&database)
        .fetch_one(&mut source)
        .await
        .unwrap();
    assert!(!can_login, "the source login role is NOLOGIN");
    let _ = source.close().await;

    // The clinic answers from the target: this instance kept the old
    // placement cached and found it again.
    let after = app.create_patient(&clinic.token, "Après", "Move").await;
    let listed = app.get("/api/v1/patients?limit=100", &clinic.token).await;
    assert_eq!(listed.status, StatusCode::OK);
    let mut target = on_second(&database).await;
    let there: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM public.patients WHERE id = $1)")
            .bind(Uuid::parse_str(&after).unwrap())
            .fetch_one(&mut target)
            .await
            .unwrap();
    assert!(there);
    let _ = target.close().await;
    // A second instance, started after, goes there directly.
    let other = app.second_instance().await;
    assert_eq!(
        other.get("/api/v1/patients", &clinic.token).await.status,
        StatusCode::OK
    );
    other.close_instance().await;

    // The audit chain moved intact and goes on.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let verified = verify_clinic(&app.state.databases, ClinicId(clinic.id))
        .await
        .unwrap();
    assert!(verified.broken.is_none(), "{:?}", verified.broken);
    assert!(verified.events >= moved.audit_head.unwrap_or(0));

    fleet.close().await;
    let prefix = app.prefix.clone();
    // The load task's handle on the app is gone once it has been dropped.
    let mut shared = app;
    let app = loop {
        match Arc::try_unwrap(shared) {
            Ok(app) => break app,
            Err(back) => {
                shared = back;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    app.cleanup().await;
    cleanup_second_cluster(&prefix).await;
}

#[tokio::test]
async fn an_interrupted_move_is_rolled_back_or_finished_when_run_again() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Interrompue").await;
    fill(&app, &clinic).await;
    let fleet = fleet_with_second_server(&app).await;
    let database = app.clinic_database(clinic.id);

    // Stopped with writes frozen: writes answer 503, reads go on.
    let mut options = MoveOptions::new(ClinicId(clinic.id), "second");
    options.fail_after = Some(Step::Frozen);
    let stopped = moves::move_clinic(&fleet, &options).await;
    assert!(
        matches!(stopped, Err(MoveError::Injected(Step::Frozen))),
        "{stopped:?}"
    );
    let write = app
        .post(
            "/api/v1/patients",
            &clinic.token,
            json!({"firstName": "Gel", "lastName": "X"}),
        )
        .await;
    assert_eq!(
        write.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        write.body
    );
    assert_eq!(write.code(), "clinic_unavailable");
    assert_eq!(
        app.get("/api/v1/patients", &clinic.token).await.status,
        StatusCode::OK
    );
    let (server, _) = placement(&app, clinic.id).await;
    let primary = servers::find(&fleet, "primary").await.unwrap().id;
    assert_eq!(server, primary, "served from the source until the switch");

    // Run again: rolled back, then made afresh.
    let moved = moves::move_clinic(&fleet, &MoveOptions::new(ClinicId(clinic.id), "second"))
        .await
        .expect("the move, run again");
    assert!(moved.rolled_back_earlier);
    let (server, _) = placement(&app, clinic.id).await;
    assert_ne!(server, primary);
    assert!(!database_exists(&app, &database).await);
    app.create_patient(&clinic.token, "Après", "Reprise").await;
    let verified = verify_clinic(&app.state.databases, ClinicId(clinic.id))
        .await
        .unwrap();
    assert!(verified.broken.is_none());

    // Stopped right after the switch: run again, it is finished.
    let other = app.register_clinic("Basculée").await;
    fill(&app, &other).await;
    let mut options = MoveOptions::new(ClinicId(other.id), "second");
    options.fail_after = Some(Step::Switched);
    options.drop_source = true;
    let stopped = moves::move_clinic(&fleet, &options).await;
    assert!(
        matches!(stopped, Err(MoveError::Injected(Step::Switched))),
        "{stopped:?}"
    );
    // Served from the target once this instance has the switch's notice
    // (until then its writes meet the source's freeze).
    let mut created = false;
    for _ in 0..500 {
        let written = app
            .post(
                "/api/v1/patients",
                &other.token,
                json!({"firstName": "Déjà", "lastName": "Là"}),
            )
            .await;
        created = written.status == StatusCode::CREATED;
        if created {
            break;
        }
        assert_eq!(written.code(), "clinic_unavailable", "{}", written.body);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(created, "writes still refused after the switch");
    let finished = moves::move_clinic(&fleet, &MoveOptions::new(ClinicId(other.id), "second"))
        .await
        .expect("finishing the move");
    assert!(finished.finished_earlier);
    assert_eq!(
        finished.source_kept_as, None,
        "--drop-source of the first run holds"
    );
    assert!(!database_exists(&app, &app.clinic_database(other.id)).await);
    let open: i64 =
        sqlx::query_scalar("SELECT count(*) FROM clinic_moves WHERE finished_at IS NULL")
            .fetch_one(&app.state.databases.central)
            .await
            .unwrap();
    assert_eq!(open, 0);
    // Already there: refused, clearly.
    let again = moves::move_clinic(&fleet, &MoveOptions::new(ClinicId(other.id), "second")).await;
    assert!(format!("{:?}", again.unwrap_err()).contains("already on server"));

    let _ = cluster();
    fleet.close().await;
    let prefix = app.prefix.clone();
    app.cleanup().await;
    cleanup_second_cluster(&prefix).await;
}

/// Runs the real binary with `args`: (success, stdout, stderr).
fn medicalpro(app: &TestApp, args: &[&str]) -> (bool, String, String) {
    let output = app
        .medicalpro_command()
        .args(args)
        .output()
        .expect("running medicalpro");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_adds_lists_drains_and_moves() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("En ligne de commande").await;
    fill(&app, &clinic).await;
    let url = second_cluster().admin_url.clone();

    let (ok, out, err) = medicalpro(
        &app,
        &[
            "server",
            "add",
            "--name",
            "second",
            "--url",
            &url,
            "--max-clinics",
            "50",
        ],
    );
    assert!(ok, "{out}{err}");
    assert!(out.contains("second"), "{out}");
    let (ok, _, err) = medicalpro(
        &app,
        &["server", "add", "--name", "bad", "--url", "not a url"],
    );
    assert!(!ok);
    assert!(err.contains("--url"), "{err}");

    let (ok, out, err) = medicalpro(&app, &["server", "list", "--json"]);
    assert!(ok, "{err}");
    let listed: serde_json::Value = serde_json::from_str(&out).unwrap();
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["primary", "second"]);
    assert_eq!(listed[1]["room"], 50);
    let (ok, out, _) = medicalpro(&app, &["server", "list"]);
    assert!(ok && out.contains("ROOM"), "{out}");

    let id = clinic.id.to_string();
    let (ok, _, err) = medicalpro(&app, &["clinic", "move", &id, "--server", "nowhere"]);
    assert!(!ok);
    assert!(err.contains("nowhere"), "{err}");
    let (ok, out, err) = medicalpro(
        &app,
        &["clinic", "move", &id, "--server", "second", "--drop-source"],
    );
    assert!(ok, "{out}{err}");
    assert!(out.contains("moved from primary to second"), "{out}");
    assert!(out.contains("dropped"), "{out}");
    assert_eq!(
        app.get("/api/v1/patients", &clinic.token).await.status,
        StatusCode::OK
    );

    let (ok, out, err) = medicalpro(&app, &["server", "drain", "second"]);
    assert!(ok, "{err}");
    assert!(out.contains(&id), "the clinic remains on it: {out}");

    let prefix = app.prefix.clone();
    app.cleanup().await;
    cleanup_second_cluster(&prefix).await;
}

/// An instance that missed the switch's notice (its change listener down)
/// keeps its connections to the source: they are ended at the cut-off, and
/// its reads, answered again on a fresh connection, find the new placement.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_that_missed_the_switch_still_answers_every_read() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Retardataire").await;
    fill(&app, &clinic).await;
    let fleet = fleet_with_second_server(&app).await;
    let late = app.second_instance().await;
    assert_eq!(
        late.get("/api/v1/patients", &clinic.token).await.status,
        StatusCode::OK
    );
    late.state.coherence.stop().await;

    let stop = AtomicBool::new(false);
    let reading = async {
        let mut reads = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let read = late.get("/api/v1/patients?limit=5", &clinic.token).await;
            reads.push((read.status, read.code().to_owned()));
        }
        reads
    };
    let moving = async {
        let moved = moves::move_clinic(&fleet, &MoveOptions::new(ClinicId(clinic.id), "second"))
            .await
            .expect("the move");
        tokio::time::sleep(Duration::from_millis(300)).await;
        stop.store(true, Ordering::Relaxed);
        moved
    };
    let (reads, moved) = tokio::join!(reading, moving);
    let refused: Vec<_> = reads.iter().filter(|(s, _)| *s != StatusCode::OK).collect();
    assert!(refused.is_empty(), "reads not answered 200: {refused:?}");
    assert!(
        reads.len() >= 20,
        "only {} reads during the move",
        reads.len()
    );
    assert!(
        moved.steps_ms.iter().any(|(step, _)| *step == Step::Done),
        "{:?}",
        moved.steps_ms
    );

    // Its writes land on the target.
    let written = late
        .post(
            "/api/v1/patients",
            &clinic.token,
            json!({"firstName": "Tardive", "lastName": "Move"}),
        )
        .await;
    assert_eq!(written.status, StatusCode::CREATED, "{}", written.body);
    let mut target = on_second(&app.clinic_database(clinic.id)).await;
    assert_eq!(patients_named(&mut target, "Tardive").await, 1);
    let _ = target.close().await;

    late.close_instance().await;
    fleet.close().await;
    let prefix = app.prefix.clone();
    app.cleanup().await;
    cleanup_second_cluster(&prefix).await;
}

/// Ends the first backend of `login` found waiting for a lock.
async fn cut_the_waiting_one(app: &TestApp, login: &str) {
    let mut admin = app.admin_connection("postgres").await;
    loop {
        let cut: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
              WHERE usename = $1 AND wait_event_type = 'Lock'",
        )
        .bind(login)
        .fetch_all(&mut admin)
        .await
        .unwrap();
        if !cut.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = admin.close().await;
}

/// A read whose connection is ended under it (as the cut-off of a move
/// ends those of an instance that missed the switch) is answered again
/// once; a write is not run twice: it answers 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_whose_connection_is_cut_is_answered_again_a_write_is_not() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Coupée").await;
    fill(&app, &clinic).await;
    let database = app.clinic_database(clinic.id);
    for write in [false, true] {
        // The table locked: the request waits on the lock, after its BEGIN.
        let mut locker = app.admin_connection(&database).await;
        let mut tx = locker.begin().await.unwrap();
        sqlx::query("LOCK TABLE public.patients IN ACCESS EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await
            .unwrap();
        let request = async {
            if write {
                app.post(
                    "/api/v1/patients",
                    &clinic.token,
                    json!({"firstName": "Coupée", "lastName": "Net"}),
                )
                .await
            } else {
                app.get("/api/v1/patients", &clinic.token).await
            }
        };
        let cutting = async {
            cut_the_waiting_one(&app, &database).await;
            tx.commit().await.unwrap();
        };
        let (answer, ()) = tokio::join!(request, cutting);
        let _ = locker.close().await;
        if write {
            assert_eq!(
                answer.status,
                StatusCode::SERVICE_UNAVAILABLE,
                "{}",
                answer.body
            );
            assert_eq!(answer.code(), "clinic_unavailable");
        } else {
            assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
            assert_eq!(answer.body["data"].as_array().unwrap().len(), 4);
        }
    }
    let mut conn = app.admin_connection(&database).await;
    assert_eq!(
        patients_named(&mut conn, "Coupée").await,
        0,
        "the write was not run again"
    );
    let _ = conn.close().await;
    app.cleanup().await;
}

/// Rows of every clinic table, and the audit chain's head (id, hash).
type Census = (BTreeMap<String, i64>, (i64, Vec<u8>));

async fn census(conn: &mut PgConnection) -> Census {
    let mut rows = BTreeMap::new();
    for (table, _) in TABLE_GRANTS
        .iter()
        .filter(|(t, _)| *t != "_sqlx_migrations")
    {
        let count: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM public.{table}"))
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        rows.insert((*table).to_owned(), count);
    }
    let head = sqlx::query_as("SELECT id, hash FROM public.audit_events ORDER BY id DESC LIMIT 1")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    (rows, head)
}

/// What is left of a move's replication on one server, for `databases`:
/// subscriptions, publications, slots.
async fn replication_left(admin_url: &str, databases: &[&str]) -> i64 {
    let options: PgConnectOptions = admin_url.parse().unwrap();
    let mut left = 0;
    for database in databases {
        let Ok(mut conn) = options.clone().database(database).connect().await else {
            continue;
        };
        let here: i64 = sqlx::query_scalar(
            "SELECT (SELECT count(*) FROM pg_subscription s JOIN pg_database d ON d.oid = s.subdbid
                      WHERE d.datname = $1)
                  + (SELECT count(*) FROM pg_publication)
                  + (SELECT count(*) FROM pg_replication_slots WHERE database = $1)",
        )
        .bind(database)
        .fetch_one(&mut conn)
        .await
        .unwrap();
        left += here;
        let _ = conn.close().await;
    }
    left
}

/// Every recorded step of a move killed for real (SIGKILL of the
/// `medicalpro clinic move` process right after it), then the move run
/// again: the clinic ends on the target, whole, served all along.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_killed_at_any_step_ends_whole_on_one_server_when_run_again() {
    let app = spawn_app().await;
    let fleet = fleet_with_second_server(&app).await;
    let primary = servers::find(&fleet, "primary").await.unwrap().id;
    let second = servers::find(&fleet, "second").await.unwrap().id;
    for step in Step::ALL {
        let clinic = app.register_clinic(&format!("Tuée après {step}")).await;
        fill(&app, &clinic).await;
        let id = clinic.id.to_string();
        let database = app.clinic_database(clinic.id);
        // Every event chained, then counted.
        let (ok, out, err) = medicalpro(&app, &["audit", "verify", "--clinic", &id]);
        assert!(ok, "{out}{err}");
        let mut source = app.admin_connection(&database).await;
        let (rows, head) = census(&mut source).await;
        let _ = source.close().await;
        assert_eq!(rows["appointments"], 4);

        let killed = {
            let mut command = app.medicalpro_command();
            command
                .args(["clinic", "move", &id, "--server", "second"])
                .env("MEDICALPRO_MOVE_KILL_AFTER", step.as_str());
            tokio::task::spawn_blocking(move || command.output().unwrap())
                .await
                .unwrap()
        };
        assert_eq!(
            killed.status.signal(),
            Some(9),
            "after {step}: {}",
            String::from_utf8_lossy(&killed.stderr)
        );
        // Served from one place: the source until the switch, the target from it.
        let (server, _) = placement(&app, clinic.id).await;
        let expected = if step >= Step::Switched {
            second
        } else {
            primary
        };
        assert_eq!(server, expected, "placement after a kill after {step}");
        let read = app.get("/api/v1/patients", &clinic.token).await;
        assert_eq!(
            read.status,
            StatusCode::OK,
            "read after a kill after {step}"
        );

        let rerun = {
            let mut command = app.medicalpro_command();
            command.args(["clinic", "move", &id, "--server", "second"]);
            tokio::task::spawn_blocking(move || command.output().unwrap())
                .await
                .unwrap()
        };
        let (out, err) = (
            String::from_utf8_lossy(&rerun.stdout),
            String::from_utf8_lossy(&rerun.stderr),
        );
        match step {
            Step::Done => assert!(
                rerun.status.success() && out.contains("is on server second"),
                "after {step}: {out}{err}"
            ),
            Step::Switched => assert!(
                rerun.status.success() && out.contains("finished it"),
                "after {step}: {out}{err}"
            ),
            _ => assert!(
                rerun.status.success() && out.contains("rolled back first"),
                "after {step}: {out}{err}"
            ),
        }
        let (server, _) = placement(&app, clinic.id).await;
        assert_eq!(
            server, second,
            "placement after a kill after {step} and a rerun"
        );
        assert!(!database_exists(&app, &database).await);
        let open: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM clinic_moves WHERE company_id = $1 AND finished_at IS NULL",
        )
        .bind(clinic.id)
        .fetch_one(&app.state.databases.central)
        .await
        .unwrap();
        assert_eq!(open, 0, "after {step}");

        // Whole: `audit verify` chains what is pending and finds the chain
        // intact; every table as before, the one read since in the trail.
        let (ok, out, err) = medicalpro(&app, &["audit", "verify", "--clinic", &id]);
        assert!(ok, "after {step}: {out}{err}");
        let mut target = on_second(&database).await;
        let (moved_rows, _) = census(&mut target).await;
        for (table, count) in &rows {
            let expected = match table.as_str() {
                "audit_events" => count + 1,
                _ => *count,
            };
            assert_eq!(
                moved_rows[table], expected,
                "{table} after a kill after {step}"
            );
        }
        let kept_head: Vec<u8> =
            sqlx::query_scalar("SELECT hash FROM public.audit_events WHERE id = $1")
                .bind(head.0)
                .fetch_one(&mut target)
                .await
                .unwrap();
        assert_eq!(
            kept_head, head.1,
            "the chain's head before the move, after {step}"
        );
        let _ = target.close().await;

        // No replication left on either server.
        let kept: Vec<String> = sqlx::query_scalar(
            "SELECT source_kept_as FROM clinic_moves WHERE company_id = $1 AND source_kept_as IS NOT NULL",
        )
        .bind(clinic.id)
        .fetch_all(&app.state.databases.central)
        .await
        .unwrap();
        assert_eq!(kept.len(), 1, "after {step}");
        assert_eq!(
            replication_left(&cluster().admin_url, &[&database, &kept[0]]).await,
            0,
            "on the source after {step}"
        );
        assert_eq!(
            replication_left(&second_cluster().admin_url, &[&database]).await,
            0,
            "on the target after {step}"
        );

        // A write lands once, on the target.
        let name = format!("Après{}", step.as_str());
        app.create_patient(&clinic.token, &name, "Reprise").await;
        let mut target = on_second(&database).await;
        assert_eq!(patients_named(&mut target, &name).await, 1, "after {step}");
        let _ = target.close().await;
    }

    fleet.close().await;
    let prefix = app.prefix.clone();
    app.cleanup().await;
    cleanup_second_cluster(&prefix).await;
}

/// A shared clinic moves to another server by the same command: it becomes
/// dedicated on its server, moves as a database, and is shared again in a
/// pod of the new server, its rows and chain whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_clinic_moves_to_another_server_and_stays_shared() {
    let app = crate::helpers::spawn_app_with(|settings| {
        settings.provisioning.default_tier = medicalpro::config::Tier::Shared;
    })
    .await;
    let clinic = app.register_clinic("Partagée").await;
    fill(&app, &clinic).await;
    let second = second_cluster();
    let (ok, out, err) = medicalpro(
        &app,
        &[
            "server",
            "add",
            "--name",
            "second",
            "--url",
            &second.admin_url,
        ],
    );
    assert!(ok, "{out}{err}");
    let before = app.get("/api/v1/patients", &clinic.token).await.body;
    let id = clinic.id.to_string();
    let (ok, out, err) = medicalpro(&app, &["clinic", "move", &id, "--server", "second"]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("to the dedicated tier"), "{out}");
    assert!(out.contains("moved from primary to second"), "{out}");
    assert!(out.contains("to the shared tier"), "{out}");
    let (tier, port, pod): (String, i32, Option<Uuid>) =
        sqlx::query_as("SELECT tier, db_port, pod_id FROM companies WHERE id = $1")
            .bind(clinic.id)
            .fetch_one(&app.state.databases.central)
            .await
            .unwrap();
    assert_eq!((tier.as_str(), port), ("shared", i32::from(second.port)));
    let pod_server: i32 = sqlx::query_scalar(
        "SELECT s.port FROM pods p JOIN db_servers s ON s.id = p.db_server_id WHERE p.id = $1",
    )
    .bind(pod.unwrap())
    .fetch_one(&app.state.databases.central)
    .await
    .unwrap();
    assert_eq!(pod_server, i32::from(second.port));
    let after = app.get("/api/v1/patients", &clinic.token).await;
    assert_eq!(after.status, StatusCode::OK, "{}", after.body);
    assert_eq!(after.body["data"], before["data"]);
    let (ok, out, _) = medicalpro(&app, &["audit", "verify", "--clinic", &id]);
    assert!(ok, "{out}");
    let prefix = app.prefix.clone();
    app.cleanup().await;
    cleanup_second_cluster(&prefix).await;
}
