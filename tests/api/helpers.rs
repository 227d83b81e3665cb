//! The test harness: one throwaway cluster per test run (every role logs in
//! with a password), a fresh `DB_PREFIX` per test, and request helpers that
//! drive the application's real router.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use medicalpro::app::build_state;
use medicalpro::clinic::audit::seal;
use medicalpro::config::{
    DbPrefix, PoolSettings, ProvisioningSettings, RegistrationSettings, ServeSettings, Settings,
    Tier,
};
use medicalpro::crypto::{random_token, JwtSecret, Keyring, MasterKey};
use medicalpro::embedded::{Durability, RunningCluster};
use medicalpro::http::state::AppState;
use medicalpro::master_keys::MasterKeys;
use serde_json::{json, Value};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};
use tower::ServiceExt;
use uuid::Uuid;

pub struct TestCluster {
    pub admin_url: String,
    pub port: u16,
    /// PostgreSQL's own log (every test of the run writes to it).
    pub log_path: PathBuf,
    _cluster: RunningCluster,
}

/// The run's cluster, started on first use in a fresh temporary directory;
/// it stops when the test process exits (parent-death signal).
pub fn cluster() -> &'static TestCluster {
    static CLUSTER: OnceLock<TestCluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        remove_stale_clusters();
        let dir = std::env::temp_dir().join(format!("medicalpro-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let cluster = RunningCluster::start(&dir, Durability::Throwaway)
            .unwrap_or_else(|e| panic!("starting the test cluster: {e}"));
        TestCluster {
            admin_url: cluster.admin_url.clone(),
            port: cluster.port,
            log_path: cluster.log_path.clone(),
            _cluster: cluster,
        }
    })
}

/// A second throwaway cluster on another port, for clinics placed on or
/// moved to another server. It accepts the first one's admin user and
/// password (every server is reached with `DATABASE_URL`'s), and lives in
/// the first one's directory, so it is removed with it.
pub fn second_cluster() -> &'static TestCluster {
    static SECOND: OnceLock<TestCluster> = OnceLock::new();
    SECOND.get_or_init(|| {
        let first = cluster();
        let password = url::Url::parse(&first.admin_url)
            .ok()
            .and_then(|url| url.password().map(str::to_owned))
            .expect("the test cluster's admin password");
        let dir = std::env::temp_dir()
            .join(format!("medicalpro-test-{}", std::process::id()))
            .join("second");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("second cluster directory");
        {
            use std::os::unix::fs::OpenOptionsExt;
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(true)
                .write(true)
                .mode(0o600)
                .open(dir.join("pg_admin_password"))
                .expect("second cluster password file");
            file.write_all(password.as_bytes())
                .expect("second cluster password");
        }
        let cluster = RunningCluster::start(&dir, Durability::Throwaway)
            .unwrap_or_else(|e| panic!("starting the second test cluster: {e}"));
        TestCluster {
            admin_url: cluster.admin_url.clone(),
            port: cluster.port,
            log_path: cluster.log_path.clone(),
            _cluster: cluster,
        }
    })
}

/// Drops every database and role of `prefix` on the second cluster.
pub async fn cleanup_second_cluster(prefix: &str) {
    let options: PgConnectOptions = second_cluster().admin_url.parse().expect("admin url");
    let mut admin = options.connect().await.expect("second cluster admin");
    let pattern = format!("{prefix}\\_%");
    let subscriptions: Vec<(String, String)> = sqlx::query_as(
        "SELECT s.subname::text, d.datname::text FROM pg_subscription s
           JOIN pg_database d ON d.oid = s.subdbid WHERE d.datname LIKE $1",
    )
    .bind(&pattern)
    .fetch_all(&mut admin)
    .await
    .unwrap();
    for (subscription, database) in subscriptions {
        let mut conn = options.clone().database(&database).connect().await.unwrap();
        for sql in [
            format!("ALTER SUBSCRIPTION \"{subscription}\" DISABLE"),
            format!("ALTER SUBSCRIPTION \"{subscription}\" SET (slot_name = NONE)"),
            format!("DROP SUBSCRIPTION \"{subscription}\""),
        ] {
            let _ = sqlx::raw_sql(&sql).execute(&mut conn).await;
        }
        let _ = conn.close().await;
    }
    drop_prefixed(&mut admin, prefix).await;
    let _ = admin.close().await;
    // Slots a failed move left on the first cluster (they keep its
    // databases from being dropped).
    let mut first = admin_options().connect().await.expect("admin connection");
    let _ = sqlx::query(
        "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
          WHERE database LIKE $1 AND NOT active",
    )
    .bind(&pattern)
    .execute(&mut first)
    .await;
    let _ = first.close().await;
}

/// Removes clusters left by earlier runs whose process is gone.
fn remove_stale_clusters() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("medicalpro-test-")
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        if !PathBuf::from(format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

pub struct TestApp {
    pub state: AppState,
    pub router: Router,
    pub settings: Settings,
    pub prefix: String,
}

pub struct TestResponse {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: Value,
}

impl TestResponse {
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    pub fn data(&self) -> &Value {
        &self.body["data"]
    }

    pub fn id(&self) -> String {
        self.body["data"]["id"]
            .as_str()
            .expect("response has data.id")
            .to_owned()
    }

    pub fn detail_fields(&self) -> Vec<String> {
        self.body["error"]["details"]
            .as_array()
            .map(|d| {
                d.iter()
                    .filter_map(|e| e["field"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// A clinic registered through the API, with its admin's credentials.
pub struct TestClinic {
    pub id: Uuid,
    pub email: String,
    pub password: String,
    pub token: String,
    pub refresh_token: String,
}

/// The tier new clinics get in this run: `DEFAULT_TIER=shared` runs the
/// suite on the shared tier (as the binary's commands, which inherit it).
pub fn test_tier() -> Tier {
    match std::env::var("DEFAULT_TIER").as_deref() {
        Ok("shared") => Tier::Shared,
        _ => Tier::Dedicated,
    }
}

pub fn settings_for(prefix: &str) -> Settings {
    Settings {
        admin_url: cluster().admin_url.clone(),
        prefix: DbPrefix::parse(prefix).expect("test prefix"),
        jwt_secret: JwtSecret::parse(&JwtSecret::generate()).expect("secret"),
        keys: Arc::new(MasterKeys::fixed(Keyring::new(MasterKey::generate(), None))),
        pool: PoolSettings {
            per_clinic_max: 3,
            idle_timeout: Duration::from_secs(30),
            ..PoolSettings::default()
        },
        provisioning: ProvisioningSettings {
            default_tier: test_tier(),
            // One spare per pod: each shared registration after a pod's
            // first takes a spare schema, and the suite stays light.
            pod_spare_schemas: 1,
            ..ProvisioningSettings::default()
        },
        refresh_family_max_days: 30,
        metrics_token: None,
        // The suite registers many clinics from one address; tests of the
        // limits set their own.
        serving: ServeSettings {
            registration: RegistrationSettings {
                per_address_per_hour: 100_000,
                per_hour: 100_000,
                ..RegistrationSettings::default()
            },
            ..ServeSettings::default()
        },
        max_concurrent_hashes: medicalpro::auth::password::default_max_concurrent(),
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// [`spawn_app`] with settings adjusted by `adjust`.
/// The same settings with other (fixed) master keys.
pub fn keyed(settings: &Settings, current: MasterKey, previous: Option<MasterKey>) -> Settings {
    Settings {
        keys: Arc::new(MasterKeys::fixed(Keyring::new(current, previous))),
        ..settings.clone()
    }
}

pub async fn spawn_app_with(adjust: impl FnOnce(&mut Settings)) -> TestApp {
    let prefix = format!("t{}", &Uuid::new_v4().simple().to_string()[..10]);
    let mut settings = settings_for(&prefix);
    adjust(&mut settings);
    let state = build_state(&settings).await.expect("building the app");
    state.coherence.start();
    tokio::spawn(state.sealer.clone().run(state.pools.clone()));
    tokio::spawn(state.provisioner.clone().keep_spares());
    TestApp {
        router: medicalpro::http::router(state.clone()),
        state,
        settings,
        prefix,
    }
}

impl TestApp {
    /// A second server instance on the same central database and clinics
    /// (as behind a load balancer): its own caches, pools, router and change
    /// listener. Close it with [`TestApp::close_instance`]; `cleanup`
    /// belongs to the first.
    pub async fn second_instance(&self) -> TestApp {
        self.instance_with(|_| {}).await
    }

    /// [`TestApp::second_instance`] with its settings changed by `adjust`
    /// (a timeout, trusted proxies).
    pub async fn instance_with(&self, adjust: impl FnOnce(&mut Settings)) -> TestApp {
        let mut settings = self.settings.clone();
        adjust(&mut settings);
        let state = build_state(&settings)
            .await
            .expect("building a second instance");
        state.coherence.start();
        TestApp {
            router: medicalpro::http::router(state.clone()),
            state,
            settings,
            prefix: self.prefix.clone(),
        }
    }

    /// Polls `path` with `token` until it answers `status`: the time it
    /// took, or `None` past `deadline`.
    pub async fn answers_within(
        &self,
        path: &str,
        token: &str,
        status: StatusCode,
        deadline: Duration,
    ) -> Option<Duration> {
        let started = std::time::Instant::now();
        while started.elapsed() < deadline {
            if self.get(path, token).await.status == status {
                return Some(started.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    /// Stops an instance as a stopping server does (pending audit events
    /// sealed, connections closed), without dropping anything.
    pub async fn close_instance(self) {
        medicalpro::app::shut_down(&self.state).await;
    }

    pub async fn send(&self, request: Request<Body>) -> TestResponse {
        let mut request = request;
        if request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .is_none()
        {
            request
                .extensions_mut()
                .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
        }
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("router is infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        TestResponse {
            status,
            headers,
            body,
        }
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> TestResponse {
        self.call_from([127, 0, 0, 1], &[], method, path, token, body)
            .await
    }

    /// A request from the TCP peer `from` (the address the server sees),
    /// with extra `headers` (raw bytes, so that odd values can be sent).
    pub async fn call_from(
        &self,
        from: [u8; 4],
        headers: &[(&str, &[u8])],
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> TestResponse {
        let mut builder = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let mut request = match body {
            Some(body) => builder
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string())),
            None => builder.body(Body::empty()),
        }
        .expect("request");
        request
            .extensions_mut()
            .insert(ConnectInfo(SocketAddr::from((from, 40000))));
        self.send(request).await
    }

    pub async fn get(&self, path: &str, token: &str) -> TestResponse {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> TestResponse {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> TestResponse {
        self.call(Method::PATCH, path, Some(token), Some(body))
            .await
    }

    pub async fn delete(&self, path: &str, token: &str) -> TestResponse {
        self.call(Method::DELETE, path, Some(token), None).await
    }

    pub async fn register(&self, body: Value) -> TestResponse {
        self.call(Method::POST, "/api/v1/auth/register", None, Some(body))
            .await
    }

    /// A registration with a unique email from the client address `from`.
    pub async fn register_from(&self, from: [u8; 4], name: &str) -> TestResponse {
        let body = json!({
            "clinicName": name, "email": unique_email(), "password": "correct horse battery",
            "firstName": "Claire", "lastName": "Admin"
        });
        self.call_from(
            from,
            &[],
            Method::POST,
            "/api/v1/auth/register",
            None,
            Some(body),
        )
        .await
    }

    /// Registers a clinic with a unique email and returns its admin session.
    pub async fn register_clinic(&self, name: &str) -> TestClinic {
        let email = format!(
            "admin-{}@{}.example.fr",
            &Uuid::new_v4().simple().to_string()[..8],
            self.prefix
        );
        let password = "correct horse battery".to_owned();
        let body = json!({
            "clinicName": name, "email": email, "password": password,
            "firstName": "Claire", "lastName": "Admin"
        });
        let mut response = self.register(body.clone()).await;
        // Many registrations at once may find every hashing slot taken: as
        // a client should, try again after `Retry-After`.
        for _ in 0..30 {
            if response.code() != "server_busy" {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            response = self.register(body.clone()).await;
        }
        assert_eq!(response.status, StatusCode::CREATED, "{}", response.body);
        TestClinic {
            id: response.data()["clinic"]["id"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap(),
            email,
            password,
            token: response.data()["accessToken"].as_str().unwrap().to_owned(),
            refresh_token: response.data()["refreshToken"].as_str().unwrap().to_owned(),
        }
    }

    /// A login from the client address `from` (the TCP peer the server sees).
    pub async fn login_from(&self, from: [u8; 4], email: &str, password: &str) -> TestResponse {
        self.call_from(
            from,
            &[],
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"email": email, "password": password})),
        )
        .await
    }

    pub async fn login(&self, email: &str, password: &str) -> TestResponse {
        self.call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"email": email, "password": password})),
        )
        .await
    }

    pub async fn create_patient(&self, token: &str, first: &str, last: &str) -> String {
        let response = self
            .post(
                "/api/v1/patients",
                token,
                json!({"firstName": first, "lastName": last}),
            )
            .await;
        assert_eq!(response.status, StatusCode::CREATED, "{}", response.body);
        response.id()
    }

    /// A direct connection as the cluster's admin role.
    pub async fn admin_connection(&self, database: &str) -> PgConnection {
        admin_options()
            .database(database)
            .connect()
            .await
            .expect("admin connection")
    }

    /// A connection as the admin role to the clinic's database, with the
    /// events that requests left pending sealed into the audit chain.
    pub async fn audit_trail(&self, clinic: Uuid) -> PgConnection {
        let mut conn = self.clinic_admin(clinic).await;
        seal(&mut conn).await.expect("sealing pending audit events");
        conn
    }

    /// A connection as the admin role to the clinic's data: its database
    /// (dedicated tier), or its pod with its schema first on the search
    /// path (shared tier).
    pub async fn clinic_admin(&self, clinic: Uuid) -> PgConnection {
        let mut central = self.admin_connection(&self.central_database()).await;
        let (database, schema): (String, Option<String>) =
            sqlx::query_as("SELECT db_name, db_schema FROM companies WHERE id = $1")
                .bind(clinic)
                .fetch_one(&mut central)
                .await
                .expect("the clinic's placement");
        let _ = central.close().await;
        let mut options = admin_options().database(&database);
        if let Some(schema) = schema {
            options = options.options([("search_path", format!("{schema},extensions"))]);
        }
        options.connect().await.expect("admin connection")
    }

    pub fn clinic_database(&self, clinic: Uuid) -> String {
        format!(
            "{}_clinic_{}",
            self.prefix,
            clinic.to_string().replace('-', "_")
        )
    }

    /// Drops a clinic's database behind the application's back.
    pub async fn drop_clinic_database(&self, clinic: Uuid) {
        let mut admin = self.admin_connection("postgres").await;
        sqlx::raw_sql(&format!(
            "DROP DATABASE \"{}\" WITH (FORCE)",
            self.clinic_database(clinic)
        ))
        .execute(&mut admin)
        .await
        .unwrap();
        let _ = admin.close().await;
    }

    /// The key this app seals with.
    pub fn master_key(&self) -> MasterKey {
        self.settings.keyring().current
    }

    pub fn central_database(&self) -> String {
        format!("{}_central", self.prefix)
    }

    /// The real binary, configured for this app's central database and
    /// keys (nothing inherited from the environment but `PATH`). Running it
    /// blocks the test's thread: a test that does so while its app runs
    /// uses a multi-thread runtime, or the app's background tasks (the
    /// audit sealer holding the trail's lock) would wait on the command that
    /// waits on them.
    pub fn medicalpro_command(&self) -> std::process::Command {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_medicalpro"));
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", &cluster().admin_url)
            .env("DB_PREFIX", &self.prefix)
            .env(
                "JWT_SECRET",
                "a test secret that is long enough to sign tokens",
            )
            .env("MASTER_KEY", self.master_key().to_base64())
            .env("DEFAULT_TIER", test_tier().as_str());
        command
    }

    /// The clinic role's real password, unsealed from central as the server does.
    pub async fn clinic_password(&self, clinic: Uuid) -> String {
        let sealed = self.sealed_password(clinic).await;
        String::from_utf8(
            self.settings
                .keys
                .open(&sealed, clinic.as_bytes())
                .expect("unseal"),
        )
        .unwrap()
    }

    pub async fn sealed_password(&self, clinic: Uuid) -> Vec<u8> {
        sqlx::query_scalar("SELECT db_password_sealed FROM companies WHERE id = $1")
            .bind(clinic)
            .fetch_one(&self.state.databases.central)
            .await
            .expect("sealed password")
    }

    /// Connects as `user` with `password` to `database`, over TCP with SCRAM.
    pub async fn connect_as(
        &self,
        user: &str,
        password: &str,
        database: &str,
    ) -> Result<PgConnection, sqlx::Error> {
        PgConnection::connect_with(
            &PgConnectOptions::new()
                .host("127.0.0.1")
                .port(cluster().port)
                .username(user)
                .password(password)
                .database(database),
        )
        .await
    }

    /// Drops every database and role of this test's prefix.
    pub async fn cleanup(self) {
        self.state.provisioner.stop_spares().await;
        self.state.coherence.stop().await;
        self.state.pools.close_all().await;
        self.state.databases.close().await;
        let mut admin = admin_options().connect().await.expect("admin connection");
        drop_prefixed(&mut admin, &self.prefix).await;
        let _ = admin.close().await;
    }
}

pub fn admin_options() -> PgConnectOptions {
    cluster().admin_url.parse().expect("admin url")
}

pub fn unique_email() -> String {
    format!(
        "{}@example.fr",
        random_token(6).to_lowercase().replace(['-', '_'], "x")
    )
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One HTTP/1.1 exchange over a plain socket with a server process:
/// (status, JSON body).
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> std::io::Result<(u16, Value)> {
    http_with(port, method, path, token, &[], body)
}

/// [`http`] with extra request headers.
pub fn http_with(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> std::io::Result<(u16, Value)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let body = body.map(Value::to_string).unwrap_or_default();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let extra: String = headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{auth}{extra}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    // A server that died mid-answer sent no status line.
    let status = response
        .get(9..12)
        .and_then(|code| code.parse().ok())
        .ok_or(std::io::ErrorKind::UnexpectedEof)?;
    let json = response
        .split_once("\r\n\r\n")
        .and_then(|(_, b)| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null);
    Ok((status, json))
}

/// Drops every database (its sessions ended) and role named `<prefix>_...`
/// on `admin`'s server.
async fn drop_prefixed(admin: &mut PgConnection, prefix: &str) {
    let pattern = format!("{prefix}\\_%");
    let databases: Vec<String> =
        sqlx::query_scalar("SELECT datname::text FROM pg_database WHERE datname LIKE $1")
            .bind(&pattern)
            .fetch_all(&mut *admin)
            .await
            .unwrap();
    for database in databases {
        sqlx::raw_sql(&format!(
            "DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)"
        ))
        .execute(&mut *admin)
        .await
        .unwrap();
    }
    let roles: Vec<String> =
        sqlx::query_scalar("SELECT rolname::text FROM pg_roles WHERE rolname LIKE $1")
            .bind(&pattern)
            .fetch_all(&mut *admin)
            .await
            .unwrap();
    for role in roles {
        sqlx::raw_sql(&format!("DROP ROLE IF EXISTS \"{role}\""))
            .execute(&mut *admin)
            .await
            .unwrap();
    }
}
