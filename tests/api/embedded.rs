//! `medicalpro serve` with no configuration: its own cluster under
//! DATA_DIR, kept with its keys across restarts, stopped on SIGTERM.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{free_port, http};

fn start(data_dir: &Path, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_medicalpro"))
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATA_DIR", data_dir)
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .current_dir(data_dir.parent().unwrap())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting medicalpro serve")
}

fn wait_healthy(port: u16, child: &mut Child) {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(90) {
        if let Ok((200, body)) = http(port, "GET", "/health", None, None) {
            assert_eq!(body["data"]["status"], "up");
            return;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "medicalpro serve exited early"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("medicalpro serve never became healthy");
}

fn stop(mut child: Child, data_dir: &Path) {
    // SAFETY: signalling a child we spawned.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert!(status.success(), "exit status {status}");
    assert!(
        !data_dir.join("pg/postmaster.pid").exists(),
        "the embedded cluster is still running after shutdown"
    );
}

#[test]
fn serve_with_no_configuration_runs_its_own_cluster_and_keeps_it() {
    let root = std::env::temp_dir().join(format!(
        "medicalpro-embedded-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&root).unwrap();
    let data_dir = root.join("data");
    let port = free_port();

    let mut first = start(&data_dir, port);
    wait_healthy(port, &mut first);
    let (status, registered) = http(
        port,
        "POST",
        "/api/v1/auth/register",
        None,
        Some(&json!({
        "clinicName": "Embedded", "email": "embedded@example.fr", "password": "password123",
        "firstName": "E", "lastName": "M"})),
    )
    .unwrap();
    assert_eq!(status, 201, "{registered}");
    let token = registered["data"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let secret = std::fs::read(data_dir.join("jwt_secret")).unwrap();
    let key = std::fs::read(data_dir.join("master_key")).unwrap();
    stop(first, &data_dir);

    let mut second = start(&data_dir, port);
    wait_healthy(port, &mut second);
    assert_eq!(std::fs::read(data_dir.join("jwt_secret")).unwrap(), secret);
    assert_eq!(std::fs::read(data_dir.join("master_key")).unwrap(), key);
    // Same key: the first run's token is still valid; same cluster: the
    // clinic and its database are there.
    let (status, me) = http(port, "GET", "/api/v1/auth/me", Some(&token), None).unwrap();
    assert_eq!(status, 200, "{me}");
    let (status, _) = http(
        port,
        "POST",
        "/api/v1/patients",
        Some(&token),
        Some(&json!({"firstName": "A", "lastName": "B"})),
    )
    .unwrap();
    assert_eq!(status, 201);
    let (status, login) = http(
        port,
        "POST",
        "/api/v1/auth/login",
        None,
        Some(&json!({
        "email": "embedded@example.fr", "password": "password123"})),
    )
    .unwrap();
    assert_eq!(status, 200, "{login}");
    stop(second, &data_dir);
    let _ = std::fs::remove_dir_all(&root);
}
