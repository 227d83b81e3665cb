//! Many clinics on few connections, and provisioning from the template.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use futures::future::join_all;
use medicalpro::app::build_state;
use medicalpro::config::Settings;
use medicalpro::migrations;
use medicalpro::tenancy::naming::ClinicId;
use medicalpro::tenancy::provisioning::NewClinic;
use medicalpro::tenancy::template::Template;
use sqlx::{ConnectOptions, PgConnection};
use uuid::Uuid;

use crate::helpers::{settings_for, spawn_app, unique_email, TestApp, TestClinic, TestResponse};

/// An app whose settings `adjust` changes first.
async fn spawn_app_with(adjust: impl FnOnce(&mut Settings)) -> TestApp {
    let prefix = format!("t{}", &Uuid::new_v4().simple().to_string()[..10]);
    let mut settings = settings_for(&prefix);
    adjust(&mut settings);
    let state = build_state(&settings).await.expect("building the app");
    TestApp {
        router: medicalpro::http::router(state.clone()),
        state,
        settings,
        prefix,
    }
}

/// Slots PostgreSQL keeps for superusers (`superuser_reserved_connections`,
/// left at its default).
const SUPERUSER_SLOTS: u32 = 3;

/// A second PostgreSQL server holding a test's clinic databases, with
/// `max_connections` at the clinic connection budget, plus the superusers'
/// slots, plus two admin connections: the one the test watches the server
/// with (held from start to finish) and the one the app watches closed
/// backends exit with (opened at the first close, before any permit is
/// given back). PostgreSQL lets a role that is not a superuser connect only
/// while more than the superusers' slots are free, so the clinics' login
/// roles can hold the budget and not one connection more: an excess is
/// refused by the server itself and written in its log, where
/// [`BudgetServer::finish`] looks, and no sampling can miss it. The admin (a
/// superuser, with the test cluster's password) provisions there one clinic
/// at a time, its connections closed before the clinic's role connects.
struct BudgetServer {
    dir: std::path::PathBuf,
    /// The test's one admin connection to this server.
    watcher: Option<PgConnection>,
    cluster: Option<medicalpro::embedded::RunningCluster>,
}

impl BudgetServer {
    async fn start(app: &TestApp, budget: u32) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "medicalpro-test-{}-budget-{}",
            std::process::id(),
            Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let admin: url::Url = crate::helpers::cluster().admin_url.parse().unwrap();
        std::fs::write(dir.join("pg_admin_password"), admin.password().unwrap()).unwrap();
        let max_connections = format!("max_connections={}", budget + SUPERUSER_SLOTS + 2);
        let setting_dir = dir.clone();
        let cluster = tokio::task::spawn_blocking(move || {
            medicalpro::embedded::RunningCluster::start_with(
                &setting_dir,
                medicalpro::embedded::Durability::Throwaway,
                &[&max_connections],
            )
        })
        .await
        .unwrap()
        .expect("starting the budget server");
        // New clinics of this test go there.
        sqlx::raw_sql(&format!(
            "UPDATE db_servers SET max_clinics = 0;
             INSERT INTO db_servers (name, host, port, max_clinics) VALUES ('budget', '127.0.0.1', {}, 1000);",
            cluster.port
        ))
        .execute(&app.state.databases.central)
        .await
        .unwrap();
        let watcher = crate::helpers::admin_options()
            .port(cluster.port)
            .connect()
            .await
            .expect("admin connection to the budget server");
        Self {
            dir,
            watcher: Some(watcher),
            cluster: Some(cluster),
        }
    }

    /// The test's admin connection to this server.
    fn watcher(&mut self) -> &mut PgConnection {
        self.watcher.as_mut().expect("the watching connection")
    }

    /// Asserts that the app watches closed backends exit on this server (so
    /// that its permits follow this server's slots, and the second admin
    /// connection counted in `max_connections` is there).
    async fn assert_exits_watched(&mut self) {
        let watchers: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE application_name = 'medicalpro-exit-watch'",
        )
        .fetch_one(self.watcher())
        .await
        .unwrap();
        assert_eq!(
            watchers, 1,
            "closed backends are not watched on their own server"
        );
    }

    /// What the server logged of connections refused for want of a slot.
    fn refusals(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("postgres.log"))
            .unwrap_or_default()
            .lines()
            .filter(|line| {
                line.contains("too many clients") || line.contains("connection slots are reserved")
            })
            .map(str::to_owned)
            .collect()
    }

    /// Stops the server, first asserting that it refused no connection.
    fn finish(mut self) {
        drop(self.watcher.take());
        let refusals = self.refusals();
        assert!(refusals.is_empty(), "over the budget: {refusals:?}");
        if let Some(cluster) = self.cluster.take() {
            cluster.stop();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An app provisioning one clinic at a time, with `adjust` applied.
async fn spawn_app_on_budget(adjust: impl FnOnce(&mut Settings)) -> (TestApp, BudgetServer) {
    let mut budget = 0;
    let app = spawn_app_with(|settings| {
        adjust(settings);
        settings.provisioning.concurrency = 1;
        budget = settings.pool.max_connections;
    })
    .await;
    let server = BudgetServer::start(&app, budget).await;
    (app, server)
}

/// A success, or the documented 503 with its Retry-After.
fn served_or_documented_503(response: &TestResponse) -> bool {
    response.status == StatusCode::OK
        || (response.status == StatusCode::SERVICE_UNAVAILABLE
            && response.code() == "clinic_unavailable"
            && response.headers.contains_key("retry-after"))
}

/// Server connections to `databases`, counted now.
async fn connections_to(admin: &mut PgConnection, databases: &[String]) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM pg_stat_activity WHERE datname = ANY($1)")
        .bind(databases)
        .fetch_one(admin)
        .await
        .unwrap()
}

#[tokio::test]
async fn fifty_clinics_share_five_connections_and_evicted_ones_reopen() {
    let (app, mut server) = spawn_app_on_budget(|settings| {
        settings.pool.max_connections = 5;
        settings.pool.per_clinic_max = 2;
        settings.pool.checkout_timeout = Duration::from_secs(10);
    })
    .await;
    let names: Vec<String> = (0..50).map(|i| format!("Clinic {i}")).collect();
    let clinics: Vec<TestClinic> =
        join_all(names.iter().map(|name| app.register_clinic(name))).await;
    let databases: Vec<String> = clinics.iter().map(|c| app.clinic_database(c.id)).collect();

    // Every clinic hit at once: the server admits five clinic connections
    // and refuses (and logs) a sixth.
    let responses = join_all(
        clinics
            .iter()
            .flat_map(|c| [&c.token, &c.token, &c.token])
            .map(|token| app.get("/api/v1/patients", token)),
    )
    .await;
    assert!(responses.iter().all(served_or_documented_503));
    let served = responses
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .count();
    assert!(served >= 100, "only {served} of 150 served");
    assert!(app.state.pools.open_connections() <= 5);

    // Most clinics lost their connection to others: they reopen on demand.
    let mut reopened = 0;
    for (clinic, database) in clinics.iter().zip(&databases).take(10) {
        if connections_to(server.watcher(), std::slice::from_ref(database)).await == 0 {
            let again = app.get("/api/v1/patients", &clinic.token).await;
            assert_eq!(again.status, StatusCode::OK, "{}", again.body);
            reopened += 1;
        }
    }
    assert!(reopened >= 5, "only {reopened} clinics had been evicted");
    assert!(connections_to(server.watcher(), &databases).await <= 5);
    server.assert_exits_watched().await;
    app.cleanup().await;
    server.finish();
}

#[tokio::test]
async fn a_request_that_gets_no_connection_in_time_answers_503_promptly() {
    let (app, mut server) = spawn_app_on_budget(|settings| {
        settings.pool.max_connections = 2;
        settings.pool.per_clinic_max = 1;
        settings.pool.checkout_timeout = Duration::from_millis(300);
    })
    .await;
    let a = app.register_clinic("Busy A").await;
    let b = app.register_clinic("Busy B").await;
    let c = app.register_clinic("Waiting C").await;
    let pool_a = app.state.pools.pool(ClinicId(a.id)).await.unwrap();
    let pool_b = app.state.pools.pool(ClinicId(b.id)).await.unwrap();
    let held_a = pool_a.begin().await.unwrap();
    let held_b = pool_b.begin().await.unwrap();

    // The budget is spent on busy connections: nothing to evict.
    let started = Instant::now();
    let refused = app.get("/api/v1/patients", &c.token).await;
    assert_eq!(
        (refused.status, refused.code()),
        (StatusCode::SERVICE_UNAVAILABLE, "clinic_unavailable")
    );
    assert!(refused.headers.contains_key("retry-after"));
    assert!(started.elapsed() < Duration::from_secs(2));
    // Clinic A holds its one connection: a second request of A waits too.
    let same_clinic = app.get("/api/v1/patients", &a.token).await;
    assert_eq!(same_clinic.status, StatusCode::SERVICE_UNAVAILABLE);

    // Released, the connection stays idle; then C evicts it.
    held_a.commit().await.unwrap();
    let served = app.get("/api/v1/patients", &c.token).await;
    assert_eq!(served.status, StatusCode::OK, "{}", served.body);
    drop(held_b);
    assert!(app.state.pools.open_connections() <= 2);
    assert_eq!(
        app.get("/api/v1/patients", &a.token).await.status,
        StatusCode::OK
    );
    server.assert_exits_watched().await;
    app.cleanup().await;
    server.finish();
}

/// A connection its clinic released a moment ago is about to be reused by
/// it: a clinic whose connections are busy waits for its own instead.
#[tokio::test]
async fn a_busy_clinic_leaves_a_connection_just_released_to_its_clinic() {
    let (app, mut server) = spawn_app_on_budget(|settings| {
        settings.pool.max_connections = 2;
        settings.pool.per_clinic_max = 2;
        settings.pool.checkout_timeout = Duration::from_secs(5);
    })
    .await;
    let a = app.register_clinic("Hot").await;
    let b = app.register_clinic("Quiet").await;
    assert_eq!(
        app.get("/api/v1/patients", &b.token).await.status,
        StatusCode::OK
    );
    let quiet = vec![app.clinic_database(b.id)];
    assert_eq!(connections_to(server.watcher(), &quiet).await, 1);

    // A's one connection is busy, the budget is spent (A's and B's idle one).
    let pool_a = app.state.pools.pool(ClinicId(a.id)).await.unwrap();
    let held = pool_a.begin().await.unwrap();
    let second = tokio::spawn({
        let pool_a = app.state.pools.pool(ClinicId(a.id)).await.unwrap();
        async move { pool_a.begin().await.map(drop).is_ok() }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!second.is_finished(), "the second checkout did not wait");
    assert_eq!(
        connections_to(server.watcher(), &quiet).await,
        1,
        "B lost its connection"
    );
    held.commit().await.unwrap();
    assert!(second.await.unwrap());
    assert_eq!(connections_to(server.watcher(), &quiet).await, 1);
    assert_eq!(app.state.pools.open_connections(), 2);
    app.cleanup().await;
    server.finish();
}

/// A clinic whose connections are all busy takes the idle connection of a
/// quiet clinic (idle for 250 ms) at once, rather than wait for its own:
/// after a burst across other clinics, a busy clinic gets its share back.
#[tokio::test]
async fn a_busy_clinic_takes_a_quiet_clinics_idle_connection_at_once() {
    let (app, mut server) = spawn_app_on_budget(|settings| {
        settings.pool.max_connections = 2;
        settings.pool.per_clinic_max = 2;
        settings.pool.checkout_timeout = Duration::from_secs(5);
    })
    .await;
    let a = app.register_clinic("Busy").await;
    let b = app.register_clinic("Quiet").await;
    assert_eq!(
        app.get("/api/v1/patients", &b.token).await.status,
        StatusCode::OK
    );
    let quiet = vec![app.clinic_database(b.id)];
    let busy = vec![app.clinic_database(a.id)];
    let pool_a = app.state.pools.pool(ClinicId(a.id)).await.unwrap();
    let held = pool_a.begin().await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;

    // A's one connection busy, the budget spent: B's quiet one goes to A.
    let started = Instant::now();
    let second = tokio::time::timeout(Duration::from_secs(1), pool_a.begin())
        .await
        .expect("the second checkout waited for A's own connection")
        .unwrap();
    let waited = started.elapsed();
    assert_eq!(connections_to(server.watcher(), &quiet).await, 0);
    assert_eq!(connections_to(server.watcher(), &busy).await, 2);
    assert!(waited < Duration::from_millis(500), "took {waited:?}");
    drop((held, second));
    assert!(app.state.pools.open_connections() <= 2);
    server.assert_exits_watched().await;
    app.cleanup().await;
    server.finish();
}

/// A clinic's backend for one short statement, through its pool.
async fn backend_of(app: &TestApp, clinic: Uuid) -> i32 {
    let pool = app.state.pools.pool(ClinicId(clinic)).await.unwrap();
    pool.run_alone(|conn| {
        Box::pin(sqlx::query_scalar("SELECT pg_backend_pid() FROM pg_sleep(0.002)").fetch_one(conn))
    })
    .await
    .expect("a connection")
    .expect("the statement")
}

#[tokio::test]
async fn a_working_set_that_fits_the_budget_keeps_its_connections() {
    let (app, mut server) = spawn_app_on_budget(|settings| {
        settings.pool.max_connections = 8;
        settings.pool.per_clinic_max = 3;
        settings.pool.checkout_timeout = Duration::from_secs(10);
    })
    .await;
    let names: Vec<String> = (0..14).map(|i| format!("Set {i}")).collect();
    let clinics: Vec<Uuid> = join_all(names.iter().map(|name| app.register_clinic(name)))
        .await
        .into_iter()
        .map(|clinic| clinic.id)
        .collect();
    let (working, others) = clinics.split_at(6);
    // The budget starts spent on idle connections of other clinics.
    for &clinic in others {
        backend_of(&app, clinic).await;
    }
    assert_eq!(app.state.pools.open_connections(), 8);

    // Twelve at once on six clinics: they want more than the budget, but
    // each clinic can keep one connection.
    let backends = join_all((0..12).map(|task| {
        let app = &app;
        async move {
            let mut seen = Vec::new();
            for round in 0..50 {
                seen.push(backend_of(app, working[(task * 7 + round) % working.len()]).await);
            }
            seen
        }
    }))
    .await;
    let mut distinct: Vec<i32> = backends.into_iter().flatten().collect();
    distinct.sort_unstable();
    distinct.dedup();
    // At most the budget's eight: the clinics settle on connections of their
    // own and keep them (closing every connection released while anyone
    // waited made several hundred: each close left a clinic with none,
    // which then waited).
    assert!(
        distinct.len() <= 8,
        "{} backends for 600 statements on 6 clinics",
        distinct.len()
    );
    assert!(app.state.pools.open_connections() <= 8);
    server.assert_exits_watched().await;
    app.cleanup().await;
    server.finish();
}

#[tokio::test]
async fn a_clinic_with_none_takes_another_clinics_last_connection_after_a_grace() {
    let (app, mut server) = spawn_app_on_budget(|settings| {
        settings.pool.max_connections = 3;
        settings.pool.per_clinic_max = 2;
        settings.pool.checkout_timeout = Duration::from_secs(1);
    })
    .await;
    let a = app.register_clinic("Two busy").await;
    let b = app.register_clinic("One in use").await;
    let c = app.register_clinic("Newcomer").await;
    // A holds two connections, both busy: its second is not idle to take.
    let pool_a = app.state.pools.pool(ClinicId(a.id)).await.unwrap();
    let held = (pool_a.begin().await.unwrap(), pool_a.begin().await.unwrap());
    // B keeps using its one connection, releasing it every few milliseconds.
    let stop = Arc::new(AtomicBool::new(false));
    let b_loop = {
        let (stop, pools) = (stop.clone(), app.state.pools.clone());
        tokio::spawn(async move {
            let pool = pools.pool(ClinicId(b.id)).await.unwrap();
            while !stop.load(Ordering::Relaxed) {
                pool.begin().await.unwrap().commit().await.unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;

    // C waits for A's second connection a moment, then takes B's, however
    // often B's releases wake it meanwhile.
    let started = Instant::now();
    let served = app.get("/api/v1/patients", &c.token).await;
    let waited = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    b_loop.await.unwrap();
    drop(held);
    assert_eq!(served.status, StatusCode::OK, "{}", served.body);
    // Not before the grace (50 ms: B's last connection is not taken at
    // once), and long before the checkout timeout.
    assert!(
        waited >= Duration::from_millis(50) && waited < Duration::from_millis(800),
        "served after {waited:?}"
    );
    assert!(app.state.pools.open_connections() <= 3);
    server.assert_exits_watched().await;
    app.cleanup().await;
    server.finish();
}

#[tokio::test]
async fn a_dropped_transaction_rolls_back_and_its_connection_is_reused() {
    let app = spawn_app_with(|settings| {
        settings.pool.max_connections = 1;
        settings.pool.per_clinic_max = 1;
    })
    .await;
    let clinic = app.register_clinic("Rollback").await;
    let pool = app.state.pools.pool(ClinicId(clinic.id)).await.unwrap();
    let mut tx = pool.begin().await.unwrap();
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    sqlx::query("INSERT INTO patients (first_name, last_name) VALUES ('Never', 'Saved')")
        .execute(&mut *tx)
        .await
        .unwrap();
    drop(tx);
    let mut tx = pool.begin().await.unwrap();
    let (same_pid, count): (i32, i64) =
        sqlx::query_as("SELECT pg_backend_pid(), (SELECT COUNT(*) FROM patients)")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
    tx.commit().await.unwrap();
    assert_eq!((same_pid, count), (pid, 0));
    app.cleanup().await;
}

fn new_clinic(name: &str) -> NewClinic {
    NewClinic {
        name: name.into(),
        email: unique_email(),
        phone: None,
        country: "FR".into(),
    }
}

/// The clinic schema as catalogue rows, with the clinic's own role name
/// replaced so that two clinics compare equal.
async fn schema_of(app: &TestApp, clinic: Uuid) -> Vec<String> {
    let database = app.clinic_database(clinic);
    let owner = crate::hostile_tenant::owner_role(app, clinic);
    let mut conn = app.admin_connection(&database).await;
    let queries = [
        // Tables, views, sequences, indexes, with owner and privileges.
        "SELECT 'relation ' || c.relname || ' ' || c.relkind::text || ' ' || pg_get_userbyid(c.relowner)
                || ' ' || COALESCE(c.relacl::text, '-')
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = 'public'",
        "SELECT 'column ' || c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
                || ' ' || a.attnotnull::text || ' ' || COALESCE(pg_get_expr(d.adbin, d.adrelid), '-')
           FROM pg_attribute a
           JOIN pg_class c ON c.oid = a.attrelid
           JOIN pg_namespace n ON n.oid = c.relnamespace
           LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
          WHERE n.nspname = 'public' AND a.attnum > 0 AND NOT a.attisdropped",
        "SELECT 'constraint ' || conrelid::regclass::text || ' ' || conname || ' '
                || pg_get_constraintdef(c.oid)
           FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
          WHERE n.nspname = 'public'",
        "SELECT 'index ' || indexdef FROM pg_indexes WHERE schemaname = 'public'",
        "SELECT 'trigger ' || pg_get_triggerdef(t.oid)
           FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
           JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = 'public' AND NOT t.tgisinternal",
        "SELECT 'function ' || p.oid::regprocedure::text || ' ' || pg_get_userbyid(p.proowner)
                || ' ' || COALESCE(p.proacl::text, '-') || ' ' || md5(p.prosrc)
           FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
          WHERE n.nspname = 'public' AND p.oid NOT IN
                (SELECT objid FROM pg_depend WHERE deptype = 'e')",
        "SELECT 'type ' || t.typname || ' ' || t.typtype::text || ' ' || pg_get_userbyid(t.typowner)
           FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
          WHERE n.nspname = 'public' AND t.oid NOT IN
                (SELECT objid FROM pg_depend WHERE deptype = 'e')",
        "SELECT 'extension ' || extname || ' ' || extversion || ' ' || pg_get_userbyid(extowner)
           FROM pg_extension",
        "SELECT 'schema ' || nspname || ' ' || pg_get_userbyid(nspowner) || ' '
                || COALESCE(nspacl::text, '-')
           FROM pg_namespace WHERE nspname = 'public'",
        "SELECT 'migration ' || version::text || ' ' || encode(checksum, 'hex') || ' ' || success::text
           FROM _sqlx_migrations",
    ];
    let mut rows = Vec::new();
    for query in queries {
        let found: Vec<String> = sqlx::query_scalar(query)
            .fetch_all(&mut conn)
            .await
            .unwrap();
        rows.extend(found.into_iter().map(|row| {
            row.replace(&database, "<clinic>")
                .replace(&owner, "<owner>")
        }));
    }
    rows.sort();
    rows
}

#[tokio::test]
async fn a_template_copy_has_the_schema_of_a_migrated_clinic() {
    let app = spawn_app().await;
    let migrated = app
        .state
        .provisioner
        .clone()
        .from_template(false)
        .provision(new_clinic("Migrated"), None)
        .await
        .unwrap();
    let template = Template::new(&app.settings.prefix);
    assert!(!template_exists(&app, &template).await);
    assert!(app.state.provisioner.prepare_template().await.unwrap());
    let copied = app
        .state
        .provisioner
        .provision(new_clinic("Copied"), None)
        .await
        .unwrap();

    let migrated_schema = schema_of(&app, migrated.clinic_id.0).await;
    let copied_schema = schema_of(&app, copied.clinic_id.0).await;
    assert!(migrated_schema.len() > 50, "{migrated_schema:?}");
    let differences: Vec<_> = migrated_schema
        .iter()
        .filter(|row| !copied_schema.contains(row))
        .chain(
            copied_schema
                .iter()
                .filter(|row| !migrated_schema.contains(row)),
        )
        .collect();
    assert!(differences.is_empty(), "{differences:#?}");
    // The audit trail is the owner role's too; the template role keeps nothing.
    assert!(migrated_schema
        .iter()
        .any(|row| row.starts_with("relation audit_events r <owner>")));
    let mut admin = app.admin_connection("postgres").await;
    let template_role_refs: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM pg_shdepend s JOIN pg_database d ON d.oid = s.dbid
          WHERE d.datname = $1 AND s.refobjid = (SELECT oid FROM pg_roles WHERE rolname = $2)",
    )
    .bind(app.clinic_database(copied.clinic_id.0))
    .bind(template.name())
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert_eq!(template_role_refs, 0);

    // The copy is a working clinic, its settings its own.
    let copied_settings: String = sqlx::query_scalar("SELECT name FROM clinic_settings")
        .fetch_one(
            &mut app
                .admin_connection(&app.clinic_database(copied.clinic_id.0))
                .await,
        )
        .await
        .unwrap();
    assert_eq!(copied_settings, "Copied");
    let clinic = app.register_clinic("Served").await;
    app.create_patient(&clinic.token, "Ada", "Lovelace").await;
    assert_eq!(
        app.get("/api/v1/patients", &clinic.token).await.body["pagination"]["total"],
        1
    );
    app.cleanup().await;
}

async fn template_exists(app: &TestApp, template: &Template) -> bool {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(template.name())
        .fetch_one(&mut app.admin_connection("postgres").await)
        .await
        .unwrap()
}

async fn template_comment(app: &TestApp, template: &Template) -> Option<String> {
    sqlx::query_scalar(
        "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1",
    )
    .bind(template.name())
    .fetch_one(&mut app.admin_connection("postgres").await)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_stale_template_is_rebuilt_before_it_is_copied() {
    let app = spawn_app().await;
    let template = Template::new(&app.settings.prefix);
    assert!(app.state.provisioner.prepare_template().await.unwrap());
    // An older template: a leftover table, and an older fingerprint.
    let mut admin = app.admin_connection("postgres").await;
    sqlx::raw_sql("CREATE TABLE left_over (id int)")
        .execute(&mut app.admin_connection(template.name()).await)
        .await
        .unwrap();
    sqlx::raw_sql(&format!(
        "COMMENT ON DATABASE \"{}\" IS 'medicalpro clinic template v1 0000'",
        template.name()
    ))
    .execute(&mut admin)
    .await
    .unwrap();

    let provisioned = app
        .state
        .provisioner
        .provision(new_clinic("After"), None)
        .await
        .unwrap();
    assert_eq!(
        template_comment(&app, &template).await,
        Some(Template::fingerprint())
    );
    for database in [
        template.name().to_owned(),
        app.clinic_database(provisioned.clinic_id.0),
    ] {
        let left_over: bool = sqlx::query_scalar("SELECT to_regclass('left_over') IS NOT NULL")
            .fetch_one(&mut app.admin_connection(&database).await)
            .await
            .unwrap();
        assert!(!left_over, "{database}");
    }
    let version: i64 = sqlx::query_scalar("SELECT schema_version FROM companies WHERE id = $1")
        .bind(provisioned.clinic_id.0)
        .fetch_one(&app.state.databases.central)
        .await
        .unwrap();
    assert_eq!(version, migrations::latest_version(&migrations::CLINIC));
    app.cleanup().await;
}

#[tokio::test]
async fn a_template_in_use_elsewhere_means_migrating_instead() {
    let app = spawn_app().await;
    let template = Template::new(&app.settings.prefix);
    // Another session holds the template lock (as a rebuild would).
    let mut other = app.admin_connection("postgres").await;
    sqlx::query("SELECT pg_advisory_lock(7312, hashtext($1))")
        .bind(template.name())
        .execute(&mut other)
        .await
        .unwrap();
    let clinic = app.register_clinic("Migrated meanwhile").await;
    assert!(!template_exists(&app, &template).await);
    app.create_patient(&clinic.token, "Marie", "Curie").await;
    sqlx::query("SELECT pg_advisory_unlock_all()")
        .execute(&mut other)
        .await
        .unwrap();
    // Free again: the next registration builds and copies it.
    app.register_clinic("Copied").await;
    assert_eq!(
        template_comment(&app, &template).await,
        Some(Template::fingerprint())
    );
    app.cleanup().await;
}

#[tokio::test]
async fn reads_go_on_when_the_server_has_ended_idle_connections() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Terminated").await;
    let id = app.create_patient(&clinic.token, "Terry", "Minate").await;
    let patient = format!("/api/v1/patients/{id}");
    assert_eq!(
        app.get(&patient, &clinic.token).await.status,
        StatusCode::OK
    );
    let database = app.clinic_database(clinic.id);
    let mut admin = app.admin_connection("postgres").await;
    let ended: Vec<i32> = sqlx::query_scalar(
        "WITH clinic AS MATERIALIZED (
             SELECT pid FROM pg_stat_activity WHERE datname = $1 AND usename = $1)
         SELECT pid FROM clinic WHERE pg_terminate_backend(pid)",
    )
    .bind(&database)
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert!(!ended.is_empty(), "the clinic held no connection to end");
    // Those backends leave (the sealer may open a new one meanwhile: it is
    // not one of them).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM pg_stat_activity WHERE pid = ANY($1)")
                .bind(&ended)
                .fetch_one(&mut admin)
                .await
                .unwrap();
        if left == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the ended backends never left");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A one-statement read and a transaction both find a live connection.
    assert_eq!(
        app.get(&patient, &clinic.token).await.status,
        StatusCode::OK
    );
    assert_eq!(
        app.get("/api/v1/patients", &clinic.token).await.status,
        StatusCode::OK
    );
    // A missing patient is no read.
    let missing = format!("/api/v1/patients/{}", Uuid::new_v4());
    assert_eq!(
        app.get(&missing, &clinic.token).await.status,
        StatusCode::NOT_FOUND
    );
    let mut trail = app.audit_trail(clinic.id).await;
    let reads: Vec<Option<Uuid>> = sqlx::query_scalar(
        "SELECT resource_id FROM audit_events WHERE action = 'read' ORDER BY id",
    )
    .fetch_all(&mut trail)
    .await
    .unwrap();
    let id: Uuid = id.parse().unwrap();
    assert_eq!(reads, [Some(id), Some(id)]);
    app.cleanup().await;
}
