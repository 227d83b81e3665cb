//! Waits for closed connections' backends to exit: PostgreSQL counts a
//! backend toward `max_connections` until its process is gone, a moment
//! after the connection closed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

/// The server process behind a connection, to wait for its exit.
pub struct Backend {
    pub pid: i32,
    pub database: String,
    /// The server it runs on (host, port).
    pub server: (String, u16),
}

/// Watches closed connections' backends until they exit, in the activity
/// view of the server each ran on: through the central pool for the central
/// server, through one admin connection per other server (opened on first
/// use, closed when idle).
#[derive(Clone)]
pub struct ExitWatch {
    central: PgPool,
    admin_options: PgConnectOptions,
    others: Arc<Mutex<HashMap<(String, u16), PgPool>>>,
}

impl ExitWatch {
    pub fn new(central: PgPool, admin_options: PgConnectOptions) -> Self {
        Self {
            central,
            admin_options,
            others: Arc::default(),
        }
    }

    /// The pool that sees `server`'s activity.
    fn on(&self, server: &(String, u16)) -> PgPool {
        let central = self.central.connect_options();
        if central.get_host() == server.0 && central.get_port() == server.1 {
            return self.central.clone();
        }
        let mut others = self.others.lock().unwrap_or_else(|p| p.into_inner());
        others
            .entry(server.clone())
            .or_insert_with(|| {
                PgPoolOptions::new()
                    .max_connections(1)
                    .min_connections(0)
                    .idle_timeout(Some(Duration::from_secs(60)))
                    .connect_lazy_with(
                        self.admin_options
                            .clone()
                            .host(&server.0)
                            .port(server.1)
                            .application_name("medicalpro-exit-watch"),
                    )
            })
            .clone()
    }

    /// Polls the activity view of `backend`'s server until it is gone.
    pub async fn until_exited(&self, backend: &Backend) {
        const LISTED: &str =
            "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE pid = $1 AND datname = $2)";
        let pool = self.on(&backend.server);
        loop {
            let listed = sqlx::query_scalar(LISTED)
                .bind(backend.pid)
                .bind(&backend.database)
                .fetch_one(&pool)
                .await;
            if !matches!(listed, Ok(true)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}
