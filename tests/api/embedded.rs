//! `medicalpro serve` with no configuration: its own cluster under
//! DATA_DIR, kept with its keys across restarts, stopped on SIGTERM. The
//! other commands never make one: only `init` and `serve` do.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{free_port, http};

/// The binary on the embedded default of `data_dir`.
fn medicalpro(data_dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_medicalpro"));
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATA_DIR", data_dir)
        .current_dir(data_dir.parent().unwrap());
    command
}

fn start(data_dir: &Path, port: u16) -> Child {
    medicalpro(data_dir)
        .arg("serve")
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("REGISTRATIONS_PER_ADDRESS_PER_HOUR", "100")
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
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "exit status {status}");
    assert!(
        !data_dir.join("pg/postmaster.pid").exists(),
        "the embedded cluster is still running after shutdown"
    );
}

fn scratch_root() -> PathBuf {
    let root = std::env::temp_dir().join(format!(
        "medicalpro-embedded-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&root).unwrap();
    root
}

/// Registers a clinic with one patient; its admin's access token.
fn register_with_patient(port: u16, name: &str) -> String {
    let email = format!("{}@example.fr", uuid::Uuid::new_v4().simple());
    let (status, registered) = http(
        port,
        "POST",
        "/api/v1/auth/register",
        None,
        Some(&json!({
        "clinicName": name, "email": email, "password": "password123",
        "firstName": "E", "lastName": "M"})),
    )
    .unwrap();
    assert_eq!(status, 201, "{registered}");
    let token = registered["data"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, created) = http(
        port,
        "POST",
        "/api/v1/patients",
        Some(&token),
        Some(&json!({"firstName": "A", "lastName": name})),
    )
    .unwrap();
    assert_eq!(status, 201, "{created}");
    token
}

#[test]
fn serve_with_no_configuration_runs_its_own_cluster_and_keeps_it() {
    let root = scratch_root();
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

/// `keys rotate` on the embedded default while the server runs and clinics
/// register: the replaced key is kept, the running server picks up the new
/// one, and after a restart every clinic, registered before, during or after
/// the rotation, is served.
#[test]
fn a_key_rotation_in_the_embedded_default_loses_no_clinic() {
    let root = scratch_root();
    let data_dir = root.join("data");
    let port = free_port();
    let mut server = start(&data_dir, port);
    wait_healthy(port, &mut server);
    let mut tokens = vec![register_with_patient(port, "Before")];
    let old_key = std::fs::read_to_string(data_dir.join("master_key")).unwrap();

    let registering = std::thread::spawn(move || {
        (0..4)
            .map(|i| register_with_patient(port, &format!("During {i}")))
            .collect::<Vec<_>>()
    });
    let rotated = medicalpro(&data_dir)
        .args(["keys", "rotate", "--json"])
        .output()
        .unwrap();
    assert!(
        rotated.status.success(),
        "{}",
        String::from_utf8_lossy(&rotated.stderr)
    );
    tokens.extend(registering.join().unwrap());
    tokens.push(register_with_patient(port, "After"));
    let new_key = std::fs::read_to_string(data_dir.join("master_key")).unwrap();
    assert_ne!(new_key, old_key);
    assert_eq!(
        std::fs::read_to_string(data_dir.join("master_key.previous")).unwrap(),
        old_key
    );

    let served = |tokens: &[String]| {
        for token in tokens {
            let (status, body) = http(port, "GET", "/api/v1/patients", Some(token), None).unwrap();
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["pagination"]["total"], 1);
        }
    };
    served(&tokens);
    stop(server, &data_dir);
    let mut server = start(&data_dir, port);
    wait_healthy(port, &mut server);
    served(&tokens);

    // Run again, it finishes whatever was sealed under the old key meanwhile.
    let again = medicalpro(&data_dir)
        .args(["keys", "rotate", "--json"])
        .output()
        .unwrap();
    assert!(again.status.success());
    served(&tokens);
    stop(server, &data_dir);
    let _ = std::fs::remove_dir_all(&root);
}

/// `medicalpro <args>` run in `dir`, with nothing configured but `PATH`
/// and `extra`.
fn command_in(dir: &Path, args: &[&str], extra: &[(&str, &Path)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_medicalpro"));
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .current_dir(dir);
    for (name, value) in extra {
        command.env(name, value);
    }
    command.output().expect("running medicalpro")
}

#[test]
fn operations_commands_never_create_a_platform() {
    let root = scratch_root();
    let data_dir = root.join("data");
    for args in [
        &["clinic", "list"][..],
        &["migrate"],
        &["backup", "--all", "--dir", "backups"],
        &["keys", "rotate"],
        &["doctor"],
    ] {
        let output = command_in(&root, args, &[]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(!output.status.success(), "{args:?} succeeded: {stdout}");
        let said = format!("{stdout}{stderr}");
        assert!(
            said.contains(&data_dir.display().to_string()),
            "{args:?} does not say where it looked: {said}"
        );
        assert!(
            said.contains("DATA_DIR") && said.contains("DATABASE_URL"),
            "{said}"
        );
        assert!(
            !data_dir.exists(),
            "{args:?} created {}",
            data_dir.display()
        );
    }
    // An empty data directory is not a platform either; it stays empty.
    std::fs::create_dir(&data_dir).unwrap();
    let output = command_in(&root, &["clinic", "list"], &[]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&data_dir.join("pg/PG_VERSION").display().to_string()),
        "{stderr}"
    );
    assert_eq!(std::fs::read_dir(&data_dir).unwrap().count(), 0);
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn init_makes_the_platform_the_commands_then_use() {
    let root = scratch_root();
    let data_dir = root.join("data");
    let elsewhere = root.join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let init = command_in(&elsewhere, &["init"], &[("DATA_DIR", &data_dir)]);
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let said = String::from_utf8_lossy(&init.stdout);
    assert!(said.contains(&data_dir.display().to_string()), "{said}");
    assert!(said.contains("medicalpro_central"), "{said}");
    for made in ["pg/PG_VERSION", "master_key", "jwt_secret"] {
        assert!(data_dir.join(made).exists(), "{made}");
    }
    assert!(
        !data_dir.join("pg/postmaster.pid").exists(),
        "init leaves the cluster stopped"
    );
    let key = std::fs::read(data_dir.join("master_key")).unwrap();
    let listed = command_in(
        &elsewhere,
        &["clinic", "list", "--json"],
        &[("DATA_DIR", &data_dir)],
    );
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let clinics: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(clinics, json!([]));
    // A second init changes nothing it made.
    let again = command_in(&elsewhere, &["init"], &[("DATA_DIR", &data_dir)]);
    assert!(again.status.success());
    assert_eq!(std::fs::read(data_dir.join("master_key")).unwrap(), key);
    assert!(!elsewhere.join("data").exists());
    let _ = std::fs::remove_dir_all(&root);
}
