//! Operations on the whole fleet of clinic databases: listing and
//! suspending and deleting clinics, migrations, backups and restores, health checks and
//! master key rotation; and the operator's side of staff accounts. Each command of the `medicalpro` command line is a
//! function here, so tests call them as the command line does.
//!
//! Every operation goes through a [`Fleet`]: the settings `serve` uses and
//! the admin and central connections.

pub mod accounts;
pub mod backup;
pub mod copy;
pub mod delete;
pub mod doctor;
pub mod erasures;
pub mod keys;
pub mod migrate;
pub mod moves;
pub mod offboarding;
pub mod operator;
pub mod pgtools;
pub mod recovery;
pub mod restore;
pub mod safety;
pub mod servers;

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgConnection};
use uuid::Uuid;

use crate::central::Databases;
use crate::config::Settings;
use crate::tenancy::naming::{quote_ident, ClinicId};

/// How long an operation waits for one clinic database to accept a connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The settings and connections every operation works with.
#[derive(Clone)]
pub struct Fleet {
    pub settings: Settings,
    pub databases: Databases,
}

/// A provisioned clinic and where its database lives.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ClinicRecord {
    pub id: Uuid,
    pub name: String,
    pub is_active: bool,
    /// `dedicated` or `shared`.
    pub tier: String,
    pub db_host: String,
    pub db_port: i32,
    /// Its database, or (shared tier) its pod's.
    pub db_name: String,
    /// Its login role, or (shared tier) its serving role.
    pub db_user: String,
    /// Dedicated tier: its login role's password, sealed.
    pub db_password_sealed: Option<Vec<u8>>,
    /// Shared tier: its pod, and its schema there.
    pub pod_id: Option<Uuid>,
    pub db_schema: Option<String>,
    /// Shared tier: the pod's login role and its password, sealed.
    pub pod_user: Option<String>,
    pub pod_password_sealed: Option<Vec<u8>>,
    pub schema_version: i64,
}

impl ClinicRecord {
    pub fn is_shared(&self) -> bool {
        self.pod_id.is_some()
    }

    /// The schema holding its tables: `public` of its own database, or its
    /// own in its pod.
    pub fn schema(&self) -> &str {
        self.db_schema.as_deref().unwrap_or("public")
    }
}

/// The central database of these settings does not exist yet.
#[derive(Debug, thiserror::Error)]
#[error("the central database {0} does not exist yet (`medicalpro init`, `medicalpro migrate` or `medicalpro serve` creates it)")]
pub struct CentralMissing(pub String);

impl Fleet {
    /// Connects as `serve` does: creates the central database if needed and
    /// brings it to the newest migration.
    pub async fn open(settings: &Settings) -> anyhow::Result<Self> {
        let databases = Databases::open(&settings.admin_url, &settings.prefix, None).await?;
        Ok(Self {
            settings: settings.clone(),
            databases,
        })
    }

    /// Connects to an existing central database without changing anything
    /// (health checks, dry runs). Fails with [`CentralMissing`] when there is
    /// no central database yet.
    pub async fn attach(settings: &Settings) -> anyhow::Result<Self> {
        let admin_options = PgConnectOptions::from_str(&settings.admin_url)
            .context("DATABASE_URL is not a valid PostgreSQL URL")?
            .application_name("medicalpro-ops");
        let admin = PgPoolOptions::new()
            .max_connections(4)
            .min_connections(0)
            .acquire_timeout(CONNECT_TIMEOUT)
            .connect_with(admin_options.clone())
            .await
            .with_context(|| {
                format!(
                    "cannot reach the database server at {}:{}",
                    admin_options.get_host(),
                    admin_options.get_port()
                )
            })?;
        let central_name = settings.prefix.central_database();
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                .bind(&central_name)
                .fetch_one(&admin)
                .await?;
        if !exists {
            admin.close().await;
            return Err(CentralMissing(central_name).into());
        }
        let central = PgPoolOptions::new()
            .max_connections(8)
            .min_connections(0)
            .acquire_timeout(CONNECT_TIMEOUT)
            .connect_with(
                admin_options
                    .clone()
                    .database(&central_name)
                    .application_name("medicalpro-ops"),
            )
            .await?;
        Ok(Self {
            settings: settings.clone(),
            databases: Databases {
                admin,
                central,
                admin_options,
            },
        })
    }

    pub async fn close(&self) {
        self.databases.close().await;
    }

    /// Provisioned, not deleted clinics (suspended ones included), oldest
    /// first; only `only` when given.
    pub async fn clinics(&self, only: Option<ClinicId>) -> Result<Vec<ClinicRecord>, sqlx::Error> {
        sqlx::query_as(
            "SELECT c.id, c.name, c.is_active, c.tier, c.db_host, c.db_port, c.db_name, c.db_user,
                    c.db_password_sealed, c.pod_id, c.db_schema, p.db_user AS pod_user,
                    p.db_password_sealed AS pod_password_sealed, c.schema_version
               FROM companies c LEFT JOIN pods p ON p.id = c.pod_id
              WHERE c.provisioning_status = 'ready' AND c.deleted_at IS NULL
                AND ($1::uuid IS NULL OR c.id = $1)
              ORDER BY c.created_at, c.id",
        )
        .bind(only.map(|id| id.0))
        .fetch_all(&self.databases.central)
        .await
    }

    /// One provisioned clinic, or an error naming it.
    pub async fn clinic(&self, id: ClinicId) -> anyhow::Result<ClinicRecord> {
        self.clinics(Some(id))
            .await?
            .pop()
            .ok_or_else(|| anyhow::anyhow!("no provisioned clinic has the id {id}"))
    }

    /// One provisioned clinic of the dedicated tier: `what` (an operation
    /// on a clinic database) is refused for a shared-tier clinic, whose
    /// pod holds other clinics too.
    pub async fn dedicated_clinic(&self, id: ClinicId, what: &str) -> anyhow::Result<ClinicRecord> {
        let clinic = self.clinic(id).await?;
        if clinic.is_shared() {
            anyhow::bail!(
                "clinic {id} is on the shared tier: {what} works on dedicated clinics only for now"
            );
        }
        Ok(clinic)
    }

    /// Provisioned clinics of the dedicated tier (see [`Fleet::clinics`]);
    /// the shared ones passed by are logged.
    pub async fn dedicated_clinics(&self, what: &str) -> Result<Vec<ClinicRecord>, sqlx::Error> {
        let (dedicated, shared): (Vec<_>, Vec<_>) = self
            .clinics(None)
            .await?
            .into_iter()
            .partition(|clinic| !clinic.is_shared());
        for clinic in shared {
            tracing::warn!(clinic.id = %clinic.id, "{what} passes by a shared-tier clinic (dedicated clinics only for now)");
            eprintln!("clinic {}: shared tier, passed by ({what} works on dedicated clinics only for now)", clinic.id);
        }
        Ok(dedicated)
    }

    /// One connection as the admin role to the maintenance database of the
    /// server at `host:port` (creating, dropping and altering clinic
    /// databases and roles).
    pub async fn admin_on_server(&self, host: &str, port: i32) -> anyhow::Result<PgConnection> {
        connect(&self.databases.admin_on_server(host, port)).await
    }

    /// The admin role, connected to `database` on the clinic's server.
    pub fn admin_options_on(&self, clinic: &ClinicRecord, database: &str) -> PgConnectOptions {
        self.databases
            .admin_on_server(&clinic.db_host, clinic.db_port)
            .database(database)
    }

    /// The clinic's own role on its own database, its password unsealed
    /// with the configured keys (current, then previous); on the shared
    /// tier, its pod's login role taking on the clinic's serving role and
    /// schema for the whole session, as the server does per transaction.
    pub fn role_options(&self, clinic: &ClinicRecord) -> anyhow::Result<PgConnectOptions> {
        let (user, sealed, sealed_for) = match (&clinic.pod_user, &clinic.pod_password_sealed) {
            (Some(user), Some(sealed)) => (user, Some(sealed), clinic.pod_id.unwrap_or(clinic.id)),
            _ => (
                &clinic.db_user,
                clinic.db_password_sealed.as_ref(),
                clinic.id,
            ),
        };
        let password = sealed
            .and_then(|sealed| self.settings.keys.open(sealed, sealed_for.as_bytes()).ok())
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(|| {
                anyhow::anyhow!("its stored password cannot be opened with MASTER_KEY (nor MASTER_KEY_PREVIOUS)")
            })?;
        let options = self
            .admin_options_on(clinic, &clinic.db_name)
            .username(user)
            .password(&password)
            .application_name("medicalpro-ops");
        Ok(match &clinic.db_schema {
            Some(schema) => options.options([
                ("role", clinic.db_user.as_str()),
                ("search_path", schema.as_str()),
            ]),
            None => options,
        })
    }
}

/// One connection, given up after [`CONNECT_TIMEOUT`].
pub async fn connect(options: &PgConnectOptions) -> anyhow::Result<PgConnection> {
    match tokio::time::timeout(CONNECT_TIMEOUT, options.connect()).await {
        Ok(connection) => Ok(connection?),
        Err(_) => anyhow::bail!("no answer within {} s", CONNECT_TIMEOUT.as_secs()),
    }
}

/// The versions of the migrations applied to a database, oldest first
/// (none before the first migration).
pub async fn applied_versions(conn: &mut PgConnection) -> Result<Vec<i64>, sqlx::Error> {
    applied_versions_in(conn, "public").await
}

/// [`applied_versions`] of the clinic schema `schema`.
pub async fn applied_versions_in(
    conn: &mut PgConnection,
    schema: &str,
) -> Result<Vec<i64>, sqlx::Error> {
    let ledger = format!("{}._sqlx_migrations", quote_ident(schema));
    let exists: bool = sqlx::query_scalar("SELECT pg_catalog.to_regclass($1) IS NOT NULL")
        .bind(&ledger)
        .fetch_one(&mut *conn)
        .await?;
    if !exists {
        return Ok(Vec::new());
    }
    sqlx::query_scalar(&format!(
        "SELECT version FROM {ledger} WHERE success ORDER BY version"
    ))
    .fetch_all(conn)
    .await
}

/// Runs `work` over `items` with at most `jobs` at once, calling `done`
/// after each; results come back in the order of `items`.
pub async fn for_each_bounded<T, R, F, Fut>(
    items: Vec<T>,
    jobs: usize,
    work: F,
    mut done: impl FnMut(&R),
) -> Vec<R>
where
    T: Send + 'static,
    R: Send + 'static,
    F: Fn(T) -> Fut,
    Fut: std::future::Future<Output = R> + Send + 'static,
{
    let semaphore = std::sync::Arc::new(tokio::sync::Semaphore::new(jobs.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    let count = items.len();
    for (index, item) in items.into_iter().enumerate() {
        let permit = semaphore.clone();
        let future = work(item);
        tasks.spawn(async move {
            let _permit = permit.acquire_owned().await;
            (index, future.await)
        });
    }
    let mut results: Vec<Option<R>> = (0..count).map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((index, result)) => {
                done(&result);
                results[index] = Some(result);
            }
            Err(error) => std::panic::resume_unwind(error.into_panic()),
        }
    }
    results.into_iter().flatten().collect()
}
