//! Read events are committed in groups: concurrent reads of a clinic share
//! commits, every read is recorded, and no read is answered before its
//! event is committed (checked by killing the server under load).

use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{header, Method, Request, StatusCode};
use futures::future::join_all;
use medicalpro::tenancy::naming::ClinicId;
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{free_port, http, http_with, spawn_app};

/// Read events of `clinic` carrying one of `request_ids`, sealed or pending.
async fn recorded(
    conn: &mut sqlx::PgConnection,
    request_ids: &[String],
) -> std::collections::HashSet<String> {
    sqlx::query_scalar(
        "SELECT request_id FROM audit_events WHERE action = 'read' AND request_id = ANY($1)
         UNION ALL
         SELECT request_id FROM audit_events_pending WHERE action = 'read' AND request_id = ANY($1)",
    )
    .bind(request_ids)
    .fetch_all(conn)
    .await
    .unwrap()
    .into_iter()
    .collect()
}

/// Ninety reads at once: each has its event, and they took far fewer
/// commits (calls of the batch function, counted by PostgreSQL) than reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reads_share_commits_and_each_is_recorded() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Group commit").await;
    let patient = app.create_patient(&clinic.token, "Gina", "Group").await;
    let database = app.clinic_database(clinic.id);
    let mut admin = app.admin_connection(&database).await;
    sqlx::raw_sql(&format!(
        "ALTER DATABASE \"{database}\" SET track_functions = 'pl'"
    ))
    .execute(&mut admin)
    .await
    .unwrap();
    // New sessions take the setting.
    app.state.pools.close(ClinicId(clinic.id)).await;

    let request_ids: Vec<String> = (0..90).map(|i| format!("group-{i}")).collect();
    let answers = join_all(request_ids.iter().map(|request_id| {
        let request = Request::builder()
            .method(Method::GET)
            .uri(format!("/api/v1/patients/{patient}"))
            .header(header::AUTHORIZATION, format!("Bearer {}", clinic.token))
            .header("x-request-id", request_id)
            .body(axum::body::Body::empty())
            .unwrap();
        app.send(request)
    }))
    .await;
    assert!(answers.iter().all(|a| a.status == StatusCode::OK));
    let found = recorded(&mut admin, &request_ids).await;
    assert_eq!(found.len(), request_ids.len(), "every read is recorded");

    // Sessions flush their function counts as they end.
    app.state.pools.close(ClinicId(clinic.id)).await;
    let mut fresh = app.admin_connection(&database).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    let calls = loop {
        let calls: Option<i64> = sqlx::query_scalar(
            "SELECT calls FROM pg_stat_user_functions WHERE funcname = 'audit_events_append_all'",
        )
        .fetch_optional(&mut fresh)
        .await
        .unwrap();
        match calls {
            Some(calls) if calls > 0 => break calls,
            _ if Instant::now() > deadline => panic!("no call of the batch function counted"),
            _ => {
                sqlx::raw_sql("SELECT pg_stat_clear_snapshot()")
                    .execute(&mut fresh)
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    assert!(
        calls * 3 <= request_ids.len() as i64,
        "{calls} commits for {} reads",
        request_ids.len()
    );
    app.cleanup().await;
}

/// The server is killed (SIGKILL) while reads are in flight, their events
/// held up by a lock on the trail (so that the kill finds reads done and
/// events not committed, a window that is otherwise a few milliseconds):
/// every read it answered has its event in the trail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_under_load_answered_no_read_left_out_of_the_trail() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Killed").await;
    let patient = app.create_patient(&clinic.token, "Kim", "Killed").await;
    let port = free_port();
    let mut server = app
        .medicalpro_command()
        .arg("serve")
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting medicalpro serve");
    let started = Instant::now();
    let token = loop {
        let login = http(
            port,
            "POST",
            "/api/v1/auth/login",
            None,
            Some(&json!({"email": clinic.email, "password": clinic.password})),
        );
        if let Ok((200, body)) = login {
            break body["data"]["accessToken"].as_str().unwrap().to_owned();
        }
        assert!(started.elapsed() < Duration::from_secs(60), "never served");
        std::thread::sleep(Duration::from_millis(100));
    };

    let answered = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..16)
        .map(|reader| {
            let (answered, stop, token) = (answered.clone(), stop.clone(), token.clone());
            let path = format!("/api/v1/patients/{patient}");
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let request_id = format!("killed-{reader}-{n}-{}", Uuid::new_v4().simple());
                    n += 1;
                    let read = http_with(
                        port,
                        "GET",
                        &path,
                        Some(&token),
                        &[("x-request-id", &request_id)],
                        None,
                    );
                    match read {
                        Ok((200, body)) => {
                            assert_eq!(body["data"]["id"], path.rsplit('/').next().unwrap());
                            answered.lock().unwrap().push(request_id);
                        }
                        Ok((status, body)) => panic!("{status} {body}"),
                        // The server is gone.
                        Err(_) => return,
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let mut holder = app.clinic_admin(clinic.id).await;
    sqlx::raw_sql("BEGIN; LOCK TABLE audit_events_pending IN EXCLUSIVE MODE")
        .execute(&mut holder)
        .await
        .unwrap();
    let answered_before_lock = answered.lock().unwrap().len();
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.kill().expect("SIGKILL");
    server.wait().unwrap();
    // The killed server's statements still waiting on the lock end here,
    // uncommitted (they would commit once it is released otherwise).
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
          WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .execute(&mut holder)
    .await
    .unwrap();
    sqlx::raw_sql("COMMIT").execute(&mut holder).await.unwrap();
    stop.store(true, Ordering::Relaxed);
    for reader in readers {
        reader.join().expect("a reader failed");
    }

    let answered = answered.lock().unwrap().clone();
    assert!(
        answered_before_lock > 50,
        "only {answered_before_lock} reads answered"
    );
    let mut trail = app.clinic_admin(clinic.id).await;
    let found = recorded(&mut trail, &answered).await;
    let missing: Vec<&String> = answered.iter().filter(|id| !found.contains(*id)).collect();
    assert!(
        missing.is_empty(),
        "{} reads answered, not in the trail, such as {:?}",
        missing.len(),
        &missing[..missing.len().min(3)]
    );
    app.cleanup().await;
}
