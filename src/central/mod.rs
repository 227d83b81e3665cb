//! The central database: clinics (`companies`), staff accounts, refresh
//! tokens, login throttling, registration limits, database servers, the
//! erasure ledger and the platform audit log; and the change notices
//! instances exchange through it ([`notify`]).
//! It never holds patient data.

pub mod audit;
pub mod companies;
pub mod erasures;
pub mod login_failures;
pub mod notify;
pub mod password_links;
pub mod pods;
pub mod refresh_tokens;
pub mod registrations;
pub mod restores;
pub mod servers;
pub mod users;

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};

use crate::config::DbPrefix;
use crate::migrations;
use crate::tenancy::naming::quote_ident;

/// How often a server purges what the central database keeps for nothing.
pub const PURGE_INTERVAL: Duration = Duration::from_secs(60 * 60);

/// Deletes refresh-token families that can no longer refresh, login
/// failures and registration attempts past their windows, and password
/// links that can no longer be used: `(tokens, failures, registrations)`
/// deleted (password links are few and not counted).
pub async fn purge_expired(
    central: &PgPool,
    refresh_family_max_days: i32,
    login_limits: &login_failures::LoginLimits,
) -> Result<(u64, u64, u64), sqlx::Error> {
    let tokens = refresh_tokens::purge_expired(central, refresh_family_max_days).await?;
    let failures = login_failures::purge_expired(central, login_limits).await?;
    let registrations = registrations::purge_expired(central).await?;
    password_links::purge_expired(central).await?;
    Ok((tokens, failures, registrations))
}

/// [`purge_expired`] at start, then every [`PURGE_INTERVAL`], for as long as
/// the server runs. Several instances may purge at once: harmless.
pub async fn purge_periodically(
    central: PgPool,
    refresh_family_max_days: i32,
    login_limits: login_failures::LoginLimits,
) {
    let mut ticks = tokio::time::interval(PURGE_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match purge_expired(&central, refresh_family_max_days, &login_limits).await {
            Ok((tokens, failures, registrations)) => {
                tracing::info!(
                    tokens,
                    failures,
                    registrations,
                    "purged expired refresh tokens, login failures and registration attempts"
                )
            }
            Err(error) => {
                tracing::warn!(%error, "purging expired refresh tokens, login failures and registration attempts failed")
            }
        }
    }
}

/// Connections to the PostgreSQL server that holds the central database.
#[derive(Clone)]
pub struct Databases {
    /// The admin role on its own maintenance database: creates and drops
    /// clinic databases and roles, nothing else.
    pub admin: PgPool,
    /// The central database.
    pub central: PgPool,
    pub admin_options: PgConnectOptions,
}

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("DATABASE_URL is not a valid PostgreSQL URL")]
    InvalidUrl(#[source] sqlx::Error),
    #[error("cannot reach the database server at {0}")]
    Unreachable(String, #[source] sqlx::Error),
    #[error("central database")]
    Database(#[from] sqlx::Error),
    #[error("central migrations failed")]
    Migration(#[from] sqlx::migrate::MigrateError),
}

impl Databases {
    /// Connects with the admin URL, creates the central database if it is
    /// missing (CONNECT revoked from PUBLIC) and brings it to the newest
    /// migration. With a `statement_timeout`, the central pool's statements
    /// are cancelled past it (migrations run on a connection of their own,
    /// without it).
    pub async fn open(
        admin_url: &str,
        prefix: &DbPrefix,
        statement_timeout: Option<Duration>,
    ) -> Result<Self, BootstrapError> {
        let admin_options = PgConnectOptions::from_str(admin_url)
            .map_err(BootstrapError::InvalidUrl)?
            .application_name("medicalpro-admin");
        let where_ = format!("{}:{}", admin_options.get_host(), admin_options.get_port());
        let admin = PgPoolOptions::new()
            .max_connections(4)
            .min_connections(0)
            .idle_timeout(Duration::from_secs(30))
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(admin_options.clone())
            .await
            .map_err(|e| BootstrapError::Unreachable(where_, e))?;
        let central_name = prefix.central_database();
        create_database_if_missing(&admin, &central_name).await?;
        let central_options = admin_options
            .clone()
            .database(&central_name)
            .application_name("medicalpro-central");
        let mut migrating = PgConnection::connect_with(&central_options).await?;
        migrations::run_on(&migrations::CENTRAL, &mut migrating).await?;
        migrating.close().await?;
        let central_options = match statement_timeout {
            Some(timeout) => with_statement_timeout(central_options, timeout),
            None => central_options,
        };
        let central = PgPoolOptions::new()
            .max_connections(16)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(central_options)
            .await?;
        servers::register_primary(&central, &admin_options).await?;
        Ok(Self {
            admin,
            central,
            admin_options,
        })
    }

    /// The admin role on the maintenance database of a server (the
    /// central one or another holding clinic databases).
    pub fn admin_on_server(&self, host: &str, port: i32) -> PgConnectOptions {
        self.admin_options
            .clone()
            .host(host)
            .port(u16::try_from(port).unwrap_or(5432))
    }

    pub async fn close(&self) {
        self.central.close().await;
        self.admin.close().await;
    }
}

/// `options` whose sessions cancel a statement running longer than
/// `timeout` (SQLSTATE 57014, answered 503 by the API).
pub fn with_statement_timeout(options: PgConnectOptions, timeout: Duration) -> PgConnectOptions {
    options.options([("statement_timeout", timeout.as_millis().to_string())])
}

/// Creates the database if it is missing and closes it to PUBLIC, under an
/// advisory lock: of several processes starting at once (server instances,
/// operations commands), one does it while the others wait.
async fn create_database_if_missing(admin: &PgPool, name: &str) -> Result<(), sqlx::Error> {
    let mut conn = admin.acquire().await?;
    // Closing the connection afterwards releases the lock, whatever happens.
    conn.close_on_drop();
    sqlx::query("SELECT pg_advisory_lock(hashtext($1))")
        .bind(name)
        .execute(&mut *conn)
        .await?;
    let admin = &mut *conn;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(name)
            .fetch_one(&mut *admin)
            .await?;
    if !exists {
        let created = sqlx::raw_sql(&format!("CREATE DATABASE {}", quote_ident(name)))
            .execute(&mut *admin)
            .await;
        match created {
            // Another instance created it first.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P04") => {}
            other => {
                other?;
            }
        }
    }
    sqlx::raw_sql(&format!(
        "REVOKE CONNECT, TEMPORARY ON DATABASE {} FROM PUBLIC",
        quote_ident(name)
    ))
    .execute(&mut *admin)
    .await?;
    Ok(())
}
