//! How much each clinic takes on disk: its database's size (dedicated
//! tier), or the sum of its schema's tables, indexes and TOAST (shared
//! tier), read from each server in one statement per server and per pod.
//! `clinic list` shows them; `serve` samples them every [`SAMPLE_EVERY`]
//! for `/metrics` (`medicalpro_clinic_size_bytes`).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use sqlx::{ConnectOptions, Connection};
use uuid::Uuid;

use crate::central::Databases;
use crate::tenancy::ddl;

/// How often `serve` reads the sizes again.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(300);

/// A clinic's size and tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClinicSize {
    pub bytes: i64,
    pub shared: bool,
}

/// The size of every provisioned clinic that could be read (a server or
/// pod that cannot be reached is left out, and logged).
pub async fn read(databases: &Databases) -> Result<HashMap<Uuid, ClinicSize>, sqlx::Error> {
    type Place = (Uuid, String, i32, String, Option<String>);
    let clinics: Vec<Place> = sqlx::query_as(
        "SELECT id, db_host, db_port, db_name, db_schema FROM companies
          WHERE provisioning_status = 'ready' AND deleted_at IS NULL",
    )
    .fetch_all(&databases.central)
    .await?;
    // One statement per server (databases) and per pod (schemas): by host,
    // port and pod, the clinics and their database or schema names.
    type Where = (String, i32, Option<String>);
    let mut places: HashMap<Where, Vec<(Uuid, String)>> = HashMap::new();
    for (id, host, port, database, schema) in clinics {
        match schema {
            None => places
                .entry((host, port, None))
                .or_default()
                .push((id, database)),
            Some(schema) => places
                .entry((host, port, Some(database)))
                .or_default()
                .push((id, schema)),
        }
    }
    let mut sizes = HashMap::new();
    for ((host, port, pod), clinics) in places {
        let names: Vec<String> = clinics.iter().map(|(_, name)| name.clone()).collect();
        let read = match &pod {
            None => on_server(databases, &host, port, &names).await,
            Some(pod) => in_pod(databases, &host, port, pod, &names).await,
        };
        match read {
            Ok(found) => {
                for (id, name) in clinics {
                    if let Some(bytes) = found.get(&name) {
                        sizes.insert(
                            id,
                            ClinicSize {
                                bytes: *bytes,
                                shared: pod.is_some(),
                            },
                        );
                    }
                }
            }
            Err(error) => {
                tracing::warn!(%host, port, pod = ?pod, %error, "reading clinic sizes failed")
            }
        }
    }
    Ok(sizes)
}

async fn on_server(
    databases: &Databases,
    host: &str,
    port: i32,
    names: &[String],
) -> Result<HashMap<String, i64>, sqlx::Error> {
    let mut conn = databases.admin_on_server(host, port).connect().await?;
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT datname::text, pg_catalog.pg_database_size(oid) FROM pg_catalog.pg_database
          WHERE datname = ANY($1) AND datallowconn",
    )
    .bind(names)
    .fetch_all(&mut conn)
    .await?;
    let _ = conn.close().await;
    Ok(rows.into_iter().collect())
}

async fn in_pod(
    databases: &Databases,
    host: &str,
    port: i32,
    pod: &str,
    names: &[String],
) -> Result<HashMap<String, i64>, sqlx::Error> {
    let mut conn = ddl::admin_session(databases.admin_on_server(host, port).database(pod))
        .connect()
        .await?;
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT n.nspname::text, COALESCE(sum(pg_catalog.pg_total_relation_size(c.oid)), 0)::bigint
           FROM pg_catalog.pg_namespace n
           LEFT JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relkind IN ('r', 'm')
          WHERE n.nspname = ANY($1)
          GROUP BY n.nspname",
    )
    .bind(names)
    .fetch_all(&mut conn)
    .await?;
    let _ = conn.close().await;
    Ok(rows.into_iter().collect())
}

/// The last sizes read, for `/metrics`.
#[derive(Default)]
pub struct SizeSamples(RwLock<HashMap<Uuid, ClinicSize>>);

impl SizeSamples {
    pub fn get(&self) -> HashMap<Uuid, ClinicSize> {
        self.0.read().expect("size samples lock").clone()
    }

    /// `serve`'s task: reads the sizes every [`SAMPLE_EVERY`].
    pub async fn keep_sampling(self: Arc<Self>, databases: Databases) {
        loop {
            match read(&databases).await {
                Ok(sizes) => *self.0.write().expect("size samples lock") = sizes,
                Err(error) => tracing::warn!(%error, "reading clinic sizes failed"),
            }
            tokio::time::sleep(SAMPLE_EVERY).await;
        }
    }
}
