//! The embedded PostgreSQL cluster: with no `DATABASE_URL`, MedicalPro keeps
//! its own cluster in `DATA_DIR/pg`, made with the machine's `initdb` by the
//! first `medicalpro init` or `medicalpro serve` (the other commands only
//! use one that exists, see [`require`]) and run as a child `postgres`
//! process on a loopback port.
//!
//! Every role, the admin one included, logs in with a SCRAM password. When the
//! server runs as root, the cluster runs as the unprivileged `postgres` user.
//! The child is started with a parent-death signal, so it stops even when the
//! server is killed without a chance to clean up.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{chown, OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use nix::sys::prctl::set_pdeathsig;
use nix::sys::signal::{kill, Signal};
use nix::unistd::{geteuid, Pid, User};

use crate::crypto::random_token;

/// The superuser created by `initdb` in the embedded cluster.
pub const ADMIN_ROLE: &str = "medicalpro_admin";

const INSTALL_HINT: &str = "PostgreSQL programs (initdb, postgres) were not found: install them with `apt-get install -y postgresql postgresql-contrib` (or set DATABASE_URL to an existing server)";

#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error("{INSTALL_HINT}")]
    ProgramsMissing,
    #[error("the embedded cluster must not run as root and no unprivileged `postgres` user exists: create one (`useradd --system postgres`) or set DATABASE_URL")]
    NoUnprivilegedUser,
    #[error("embedded cluster: {0}")]
    Io(String, #[source] std::io::Error),
    #[error("embedded cluster: `{program}` failed: {output}")]
    ProgramFailed { program: String, output: String },
    #[error("embedded cluster did not become ready within {0:?}; its log says: {1}")]
    NotReady(Duration, String),
    #[error("no MedicalPro data in {} ({missing}). Only `medicalpro init` and `medicalpro serve` create an embedded cluster and keys; to use an existing one, pass --data-dir DIR (or set DATA_DIR), or set DATABASE_URL and MASTER_KEY (and JWT_SECRET) for an external PostgreSQL server", dir.display())]
    NotInitialised { dir: PathBuf, missing: String },
}

/// How the cluster trades durability for speed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// A real server's data: PostgreSQL defaults.
    Durable,
    /// A test run's scratch cluster: no fsync, more connections.
    Throwaway,
}

/// The installed PostgreSQL server programs.
#[derive(Debug, Clone)]
pub struct Programs {
    pub bin_dir: PathBuf,
}

impl Programs {
    /// Finds `initdb` and `postgres` on `PATH`, then in Debian's
    /// `/usr/lib/postgresql/<version>/bin` (newest first).
    pub fn find() -> Result<Self, EmbeddedError> {
        let on_path = std::env::var_os("PATH")
            .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
            .unwrap_or_default();
        let mut debian: Vec<PathBuf> = fs::read_dir("/usr/lib/postgresql")
            .map(|dirs| dirs.flatten().map(|d| d.path().join("bin")).collect())
            .unwrap_or_default();
        debian.sort_by_key(|dir| {
            std::cmp::Reverse(
                dir.parent()
                    .and_then(|v| v.file_name())
                    .and_then(|v| v.to_str())
                    .and_then(|v| v.parse::<u32>().ok())
                    .unwrap_or(0),
            )
        });
        on_path
            .into_iter()
            .chain(debian)
            .find(|dir| dir.join("initdb").is_file() && dir.join("postgres").is_file())
            .map(|bin_dir| Self { bin_dir })
            .ok_or(EmbeddedError::ProgramsMissing)
    }

    pub fn program(&self, name: &str) -> PathBuf {
        self.bin_dir.join(name)
    }
}

/// The files of `DATA_DIR` that make an embedded cluster.
pub const CLUSTER_FILES: [&str; 3] = ["pg/PG_VERSION", "pg_admin_password", "pg_port"];

/// Checks, creating nothing, that `dir` holds each of `files` (made by
/// `medicalpro init` or `medicalpro serve`); the first one missing is
/// named by its absolute path.
pub fn require(dir: &Path, files: &[&str]) -> Result<(), EmbeddedError> {
    let Some(name) = files.iter().find(|name| !dir.join(name).exists()) else {
        return Ok(());
    };
    let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_owned());
    let missing = if dir.is_dir() {
        format!("{} does not exist", dir.join(name).display())
    } else {
        "the directory does not exist".to_owned()
    };
    Err(EmbeddedError::NotInitialised { dir, missing })
}

/// A running embedded cluster. [`RunningCluster::stop`] shuts it down; if
/// the process dies first, the parent-death signal stops it.
pub struct RunningCluster {
    pub admin_url: String,
    pub port: u16,
    /// The server's log, `DATA_DIR/postgres.log`.
    pub log_path: PathBuf,
    pid: i32,
    supervisor: Option<JoinHandle<()>>,
}

impl RunningCluster {
    /// Creates the cluster in `dir` on first use, then starts it and waits
    /// until it accepts connections.
    pub fn start(dir: &Path, durability: Durability) -> Result<Self, EmbeddedError> {
        Self::start_with(dir, durability, &[])
    }

    /// [`start`](Self::start), with server settings (`name=value`) that take
    /// precedence over the defaults: a second server of a test with a small
    /// `max_connections`, for instance.
    pub fn start_with(
        dir: &Path,
        durability: Durability,
        settings: &[&str],
    ) -> Result<Self, EmbeddedError> {
        let programs = Programs::find()?;
        let owner = cluster_owner()?;
        create_private_dir(dir, owner.is_some())?;
        let dir = dir
            .canonicalize()
            .map_err(|e| EmbeddedError::Io(format!("resolving {}", dir.display()), e))?;
        let _lock = lock_data_dir(&dir)?;
        let password = read_or_create(&dir.join("pg_admin_password"), || random_token(24))?;
        let port: u16 = read_or_create(&dir.join("pg_port"), || free_port().to_string())?
            .trim()
            .parse()
            .map_err(|_| {
                EmbeddedError::Io(
                    "reading pg_port".into(),
                    std::io::Error::other("not a port number"),
                )
            })?;
        let pgdata = dir.join("pg");
        if !pgdata.join("PG_VERSION").exists() {
            init_cluster(&programs, &dir, &pgdata, &password, owner)?;
        }
        let log_path = dir.join("postgres.log");
        if let Some(pid) = running_postmaster(&pgdata) {
            // Another medicalpro process (a running server) owns it: use it.
            return Ok(Self {
                admin_url: admin_url(&password, port),
                port,
                log_path,
                pid,
                supervisor: None,
            });
        }
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&log_path)
            .map_err(|e| EmbeddedError::Io(format!("opening {}", log_path.display()), e))?;
        let mut command = Command::new(programs.program("postgres"));
        command
            .arg("-D")
            .arg(&pgdata)
            .args(["-p", &port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args(["-c", "unix_socket_directories="])
            .args(tuning(durability))
            .args(settings.iter().flat_map(|setting| ["-c", setting]))
            .stdin(Stdio::null())
            .stdout(
                log.try_clone()
                    .map_err(|e| EmbeddedError::Io("log".into(), e))?,
            )
            .stderr(log);
        as_owner(&mut command, owner);
        stop_with_parent(&mut command);
        let (pid, supervisor, exited) = supervise(command)?;
        wait_until_ready(&pgdata, &log_path, &exited)?;
        Ok(Self {
            admin_url: admin_url(&password, port),
            port,
            log_path,
            pid,
            supervisor: Some(supervisor),
        })
    }

    /// Fast shutdown: open sessions are closed, then the cluster stops cleanly.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(supervisor) = self.supervisor.take() {
            let _ = kill(Pid::from_raw(self.pid), Signal::SIGINT);
            let _ = supervisor.join();
        }
    }
}

impl Drop for RunningCluster {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Holds `DATA_DIR/cluster.lock` (released when the file is dropped), so
/// that of two processes starting at once (a server and a command), one
/// creates and starts the cluster and the other then attaches to it.
fn lock_data_dir(dir: &Path) -> Result<Flock<fs::File>, EmbeddedError> {
    let path = dir.join("cluster.lock");
    let io = |e| EmbeddedError::Io(format!("locking {}", path.display()), e);
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(io)?;
    // Blocks until free.
    Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, errno)| io(errno.into()))
}

fn admin_url(password: &str, port: u16) -> String {
    format!("postgres://{ADMIN_ROLE}:{password}@127.0.0.1:{port}/postgres?sslmode=disable")
}

/// The pid of a postmaster already serving `pgdata`, if one is up.
fn running_postmaster(pgdata: &Path) -> Option<i32> {
    let text = fs::read_to_string(pgdata.join("postmaster.pid")).ok()?;
    let mut lines = text.lines();
    let pid: i32 = lines.next()?.trim().parse().ok()?;
    let ready = text.lines().nth(7).map(str::trim) == Some("ready");
    // No signal: only whether the process exists.
    let alive = matches!(kill(Pid::from_raw(pid), None), Ok(()) | Err(Errno::EPERM));
    (ready && alive).then_some(pid)
}

/// Server settings by durability. Both keep `wal_level = logical`, which
/// `medicalpro clinic move` needs (a publication on the clinic's server,
/// read by a subscription on the other); it takes effect at start.
fn tuning(durability: Durability) -> Vec<&'static str> {
    match durability {
        Durability::Durable => vec!["-c", "wal_level=logical"],
        Durability::Throwaway => vec![
            "-c",
            "wal_level=logical",
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "max_connections=400",
            // Several moves at once (tests): each subscription's initial
            // copy runs table by table in sync workers.
            "-c",
            "max_worker_processes=48",
            "-c",
            "max_logical_replication_workers=32",
            "-c",
            "max_sync_workers_per_subscription=8",
            // A replication origin per sync worker on the target, a slot
            // per sync worker on the source.
            "-c",
            "max_replication_slots=64",
            "-c",
            "max_wal_senders=64",
        ],
    }
}

/// The user the cluster runs as: `None` for the current (unprivileged) user,
/// the `postgres` user's ids when running as root.
fn cluster_owner() -> Result<Option<(u32, u32)>, EmbeddedError> {
    if !geteuid().is_root() {
        return Ok(None);
    }
    match User::from_name("postgres") {
        Ok(Some(user)) => Ok(Some((user.uid.as_raw(), user.gid.as_raw()))),
        _ => Err(EmbeddedError::NoUnprivilegedUser),
    }
}

fn as_owner(command: &mut Command, owner: Option<(u32, u32)>) {
    if let Some((uid, gid)) = owner {
        command.uid(uid).gid(gid).env("HOME", "/tmp");
    }
}

/// Asks the kernel to stop the child (fast shutdown) if this process dies.
fn stop_with_parent(command: &mut Command) {
    // SAFETY: prctl is async-signal-safe; it runs in the child after fork,
    // after the uid change (which would otherwise reset it).
    unsafe {
        command.pre_exec(|| Ok(set_pdeathsig(Signal::SIGINT)?));
    }
}

/// Spawns `command` on a thread that lives as long as the child (the
/// parent-death signal fires when the spawning thread ends).
fn supervise(
    mut command: Command,
) -> Result<(i32, JoinHandle<()>, mpsc::Receiver<()>), EmbeddedError> {
    let (failed_tx, failed_rx) = mpsc::channel::<std::io::Error>();
    let (exited_tx, exited_rx) = mpsc::channel::<()>();
    let (pid_tx, pid_rx) = mpsc::channel();
    let supervisor = std::thread::Builder::new()
        .name("postgres-supervisor".into())
        .spawn(move || match command.spawn() {
            Ok(mut child) => {
                let _ = pid_tx.send(child.id() as i32);
                let _ = child.wait();
                let _ = exited_tx.send(());
            }
            Err(e) => {
                let _ = failed_tx.send(e);
            }
        })
        .map_err(|e| EmbeddedError::Io("starting supervisor thread".into(), e))?;
    match pid_rx.recv() {
        Ok(pid) => Ok((pid, supervisor, exited_rx)),
        Err(_) => {
            let error = failed_rx
                .recv()
                .unwrap_or_else(|_| std::io::Error::other("postgres did not start"));
            Err(EmbeddedError::Io("starting postgres".into(), error))
        }
    }
}

/// Waits for `postmaster.pid` to report `ready` (its eighth line).
fn wait_until_ready(
    pgdata: &Path,
    log_path: &Path,
    exited: &mpsc::Receiver<()>,
) -> Result<(), EmbeddedError> {
    let timeout = Duration::from_secs(60);
    let started = Instant::now();
    let pid_file = pgdata.join("postmaster.pid");
    while started.elapsed() < timeout {
        if exited.try_recv().is_ok() {
            return Err(EmbeddedError::ProgramFailed {
                program: "postgres".into(),
                output: log_tail(log_path),
            });
        }
        let ready = fs::read_to_string(&pid_file)
            .map(|text| text.lines().nth(7).map(str::trim) == Some("ready"))
            .unwrap_or(false);
        if ready {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(EmbeddedError::NotReady(timeout, log_tail(log_path)))
}

fn log_tail(log_path: &Path) -> String {
    let text = fs::read_to_string(log_path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(5)..].join(" | ")
}

fn init_cluster(
    programs: &Programs,
    dir: &Path,
    pgdata: &Path,
    password: &str,
    owner: Option<(u32, u32)>,
) -> Result<(), EmbeddedError> {
    let io = |what: &str| {
        let what = what.to_owned();
        move |e| EmbeddedError::Io(what, e)
    };
    fs::create_dir_all(pgdata).map_err(io("creating the cluster directory"))?;
    fs::set_permissions(pgdata, fs::Permissions::from_mode(0o700))
        .map_err(io("securing the cluster directory"))?;
    let pwfile = dir.join("initdb.pw");
    write_private(&pwfile, password)?;
    if let Some((uid, gid)) = owner {
        chown(pgdata, Some(uid), Some(gid)).map_err(io("handing the cluster to postgres"))?;
        chown(&pwfile, Some(uid), Some(gid))
            .map_err(io("handing the password file to postgres"))?;
    }
    let mut command = Command::new(programs.program("initdb"));
    command
        .arg("-D")
        .arg(pgdata)
        .args(["-U", ADMIN_ROLE, "--auth=scram-sha-256", "-E", "UTF8"])
        .args(["--no-locale", "--no-instructions"])
        .arg(format!("--pwfile={}", pwfile.display()));
    as_owner(&mut command, owner);
    let output = command.output();
    let _ = fs::remove_file(&pwfile);
    let output = output.map_err(io("running initdb"))?;
    if !output.status.success() {
        let _ = fs::remove_dir_all(pgdata);
        return Err(EmbeddedError::ProgramFailed {
            program: "initdb".into(),
            output: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    close_maintenance_databases(programs, pgdata, owner).inspect_err(|_| {
        let _ = fs::remove_dir_all(pgdata);
    })
}

/// Clinic roles get no CONNECT on the maintenance databases: only the
/// databases this server creates, each for its own role. Run in
/// single-user mode, before the server first listens.
fn close_maintenance_databases(
    programs: &Programs,
    pgdata: &Path,
    owner: Option<(u32, u32)>,
) -> Result<(), EmbeddedError> {
    let mut command = Command::new(programs.program("postgres"));
    command
        .arg("--single")
        .arg("-D")
        .arg(pgdata)
        .arg("-j")
        .arg("postgres")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    as_owner(&mut command, owner);
    let mut child = command
        .spawn()
        .map_err(|e| EmbeddedError::Io("running postgres --single".into(), e))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(
                b"REVOKE CONNECT, TEMPORARY ON DATABASE postgres FROM PUBLIC;\n\
                  REVOKE CONNECT, TEMPORARY ON DATABASE template1 FROM PUBLIC;\n",
            )
            .map_err(|e| EmbeddedError::Io("writing to postgres --single".into(), e))?;
    }
    let output = child
        .wait_with_output()
        .map_err(|e| EmbeddedError::Io("running postgres --single".into(), e))?;
    let errors = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() || errors.contains("ERROR") {
        return Err(EmbeddedError::ProgramFailed {
            program: "postgres --single".into(),
            output: errors.trim().to_owned(),
        });
    }
    Ok(())
}

fn create_private_dir(dir: &Path, traversable: bool) -> Result<(), EmbeddedError> {
    fs::create_dir_all(dir)
        .map_err(|e| EmbeddedError::Io(format!("creating {}", dir.display()), e))?;
    // The cluster's own user must be able to reach DATA_DIR/pg, not list DATA_DIR.
    let mode = if traversable { 0o711 } else { 0o700 };
    fs::set_permissions(dir, fs::Permissions::from_mode(mode))
        .map_err(|e| EmbeddedError::Io(format!("securing {}", dir.display()), e))
}

/// Reads a small secret file, or creates it (mode 0600) with `make()`.
/// The file appears whole (written aside, then linked into place), so a
/// process starting at the same moment reads either nothing or all of it,
/// and of two creating it at once, both end up with the first one's value.
pub fn read_or_create(path: &Path, make: impl FnOnce() -> String) -> Result<String, EmbeddedError> {
    let read = |file: &mut fs::File| {
        let mut text = String::new();
        file.read_to_string(&mut text)
            .map_err(|e| EmbeddedError::Io(format!("reading {}", path.display()), e))?;
        Ok(text.trim().to_owned())
    };
    match fs::File::open(path) {
        Ok(mut file) => read(&mut file),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let value = make();
            let mut aside = path.as_os_str().to_owned();
            aside.push(format!(".{}.new", std::process::id()));
            let aside = PathBuf::from(aside);
            let _ = fs::remove_file(&aside);
            write_private(&aside, &value)?;
            let linked = fs::hard_link(&aside, path);
            let _ = fs::remove_file(&aside);
            match linked {
                Ok(()) => Ok(value),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let mut file = fs::File::open(path)
                        .map_err(|e| EmbeddedError::Io(format!("reading {}", path.display()), e))?;
                    read(&mut file)
                }
                Err(e) => Err(EmbeddedError::Io(format!("writing {}", path.display()), e)),
            }
        }
        Err(e) => Err(EmbeddedError::Io(format!("reading {}", path.display()), e)),
    }
}

fn write_private(path: &Path, value: &str) -> Result<(), EmbeddedError> {
    let io = |e| EmbeddedError::Io(format!("writing {}", path.display()), e);
    let mut file = fs::OpenOptions::new()
        .create_new(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    file.write_all(value.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .unwrap_or(54329)
}
