//! `medicalpro server ...`: the PostgreSQL servers that hold clinic
//! databases (`db_servers`). A server is added by its admin URL, listed with
//! what it holds, and drained (no new clinics; the ones it has stay until
//! moved with `medicalpro clinic move`).
//!
//! Credentials: every server is reached with the admin user and password of
//! `DATABASE_URL` (only its host and port are stored), as provisioning,
//! backups and restores already do. `server add` checks that the server
//! accepts them, rather than storing a second secret: an operator gives the
//! same admin role (name and password) to every server.

use std::str::FromStr;

use anyhow::Context;
use serde::Serialize;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use super::{connect, Fleet};
use crate::central::audit;

/// A server as `server list` shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerInfo {
    pub id: Uuid,
    pub name: String,
    pub host: String,
    pub port: i32,
    pub max_clinics: i32,
    /// `false` once drained: no new clinic goes there.
    pub is_active: bool,
    /// Live clinics placed there (pending ones included).
    pub clinics: i64,
    /// Places left for new clinics (0 when drained).
    pub room: i64,
    /// Size of its clinic databases; `None` when it cannot be reached.
    pub size_bytes: Option<i64>,
    /// Sessions open on its clinic databases, and its `max_connections`.
    pub connections: Option<i64>,
    pub max_connections: Option<i64>,
    /// Why it could not be reached, if it could not.
    pub error: Option<String>,
}

/// A server just registered.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Added {
    pub id: Uuid,
    pub name: String,
    pub host: String,
    pub port: i32,
    pub max_clinics: i32,
    /// The server's `wal_level`: clinics can be moved to or from it only
    /// when it is `logical`.
    pub wal_level: String,
}

/// A drained server and the clinics still on it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Drained {
    pub id: Uuid,
    pub name: String,
    pub remaining: Vec<RemainingClinic>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct RemainingClinic {
    pub id: Uuid,
    pub name: String,
}

/// A registered server's identity and place.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ServerRow {
    pub id: Uuid,
    pub name: String,
    pub host: String,
    pub port: i32,
    pub max_clinics: i32,
    pub is_active: bool,
}

/// Checks that the server at `url` accepts `DATABASE_URL`'s admin
/// credentials and may create databases and roles, then records it.
pub async fn add(fleet: &Fleet, name: &str, url: &str, max_clinics: i32) -> anyhow::Result<Added> {
    let name = name.trim();
    if name.is_empty() || name.len() > 63 {
        anyhow::bail!("--name must be 1 to 63 characters");
    }
    if max_clinics < 0 {
        anyhow::bail!("--max-clinics must be 0 or more");
    }
    let given = PgConnectOptions::from_str(url)
        .context("--url is not a PostgreSQL URL (postgres://admin:password@host:port/postgres)")?;
    let (host, port) = (given.get_host().to_owned(), i32::from(given.get_port()));
    let central = &fleet.databases.central;
    let taken: Option<String> = sqlx::query_scalar(
        "SELECT name FROM db_servers WHERE name = $1 OR (host = $2 AND port = $3)",
    )
    .bind(name)
    .bind(&host)
    .bind(port)
    .fetch_optional(central)
    .await?;
    if let Some(existing) = taken {
        anyhow::bail!("a server named {existing} already has this name or {host}:{port}");
    }
    let admin = connect(&given)
        .await
        .with_context(|| format!("cannot connect to {host}:{port} with --url"))?;
    let _ = admin.close().await;
    let product = fleet.databases.admin_on_server(&host, port);
    let mut admin = connect(&product).await.with_context(|| {
        format!(
            "{host}:{port} does not accept DATABASE_URL's admin user and password: every server \
             is reached with them (give this server the same admin role and password)"
        )
    })?;
    let checked = check_rights(&mut admin).await;
    let _ = admin.close().await;
    let wal_level = checked?;
    let id: Uuid = sqlx::query_scalar(
        "INSERT INTO db_servers (name, host, port, max_clinics) VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(name)
    .bind(&host)
    .bind(port)
    .bind(max_clinics)
    .fetch_one(central)
    .await?;
    record(fleet, "server.added", id, name).await;
    Ok(Added {
        id,
        name: name.to_owned(),
        host,
        port,
        max_clinics,
        wal_level,
    })
}

/// The admin may create databases and roles; returns the `wal_level`.
async fn check_rights(admin: &mut PgConnection) -> anyhow::Result<String> {
    let (superuser, createdb, createrole): (bool, bool, bool) = sqlx::query_as(
        "SELECT rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = current_user",
    )
    .fetch_one(&mut *admin)
    .await?;
    if !(superuser || (createdb && createrole)) {
        anyhow::bail!("the admin role on this server needs CREATEDB and CREATEROLE (or SUPERUSER)");
    }
    Ok(sqlx::query_scalar("SELECT current_setting('wal_level')")
        .fetch_one(admin)
        .await?)
}

/// Every server with its clinics, room, and (when reachable) size and
/// sessions, oldest first.
pub async fn list(fleet: &Fleet) -> anyhow::Result<Vec<ServerInfo>> {
    let rows: Vec<(ServerRow, i64, Vec<String>)> =
        sqlx::query_as::<_, (Uuid, String, String, i32, i32, bool, i64, Vec<String>)>(
            "SELECT s.id, s.name, s.host, s.port, s.max_clinics, s.is_active, COUNT(c.id),
                COALESCE(array_agg(c.db_name) FILTER (WHERE c.db_name IS NOT NULL), '{}')
           FROM db_servers s
           LEFT JOIN companies c ON c.db_server_id = s.id AND c.deleted_at IS NULL
          GROUP BY s.id ORDER BY s.created_at, s.name",
        )
        .fetch_all(&fleet.databases.central)
        .await?
        .into_iter()
        .map(
            |(id, name, host, port, max_clinics, is_active, clinics, databases)| {
                (
                    ServerRow {
                        id,
                        name,
                        host,
                        port,
                        max_clinics,
                        is_active,
                    },
                    clinics,
                    databases,
                )
            },
        )
        .collect();
    let mut servers = Vec::with_capacity(rows.len());
    for (row, clinics, databases) in rows {
        let usage = usage(fleet, &row, &databases).await;
        let room = if row.is_active {
            (i64::from(row.max_clinics) - clinics).max(0)
        } else {
            0
        };
        let (size_bytes, connections, max_connections, error) = match usage {
            Ok((size, sessions, max)) => (Some(size), Some(sessions), Some(max), None),
            Err(error) => (None, None, None, Some(format!("{error:#}"))),
        };
        servers.push(ServerInfo {
            id: row.id,
            name: row.name,
            host: row.host,
            port: row.port,
            max_clinics: row.max_clinics,
            is_active: row.is_active,
            clinics,
            room,
            size_bytes,
            connections,
            max_connections,
            error,
        });
    }
    Ok(servers)
}

/// (size of the clinic databases, sessions on them, `max_connections`).
async fn usage(
    fleet: &Fleet,
    server: &ServerRow,
    databases: &[String],
) -> anyhow::Result<(i64, i64, i64)> {
    let mut admin = fleet.admin_on_server(&server.host, server.port).await?;
    let found = sqlx::query_as(
        "SELECT (SELECT COALESCE(sum(pg_database_size(datname)), 0)::bigint
                   FROM pg_database WHERE datname = ANY($1)),
                (SELECT count(*) FROM pg_stat_activity WHERE datname = ANY($1)),
                current_setting('max_connections')::bigint",
    )
    .bind(databases)
    .fetch_one(&mut admin)
    .await;
    let _ = admin.close().await;
    Ok(found?)
}

/// A server by id or name.
pub async fn find(fleet: &Fleet, id_or_name: &str) -> anyhow::Result<ServerRow> {
    let id = Uuid::parse_str(id_or_name).ok();
    sqlx::query_as(
        "SELECT id, name, host, port, max_clinics, is_active FROM db_servers
          WHERE id = $1 OR ($1 IS NULL AND name = $2)",
    )
    .bind(id)
    .bind(id_or_name)
    .fetch_optional(&fleet.databases.central)
    .await?
    .ok_or_else(|| anyhow::anyhow!("no database server has the id or name {id_or_name}"))
}

/// Takes a server out of placement (`is_active = false`): no new clinic
/// goes there; says which clinics remain on it.
pub async fn drain(fleet: &Fleet, id_or_name: &str) -> anyhow::Result<Drained> {
    let server = find(fleet, id_or_name).await?;
    let central = &fleet.databases.central;
    sqlx::query("UPDATE db_servers SET is_active = false, updated_at = now() WHERE id = $1")
        .bind(server.id)
        .execute(central)
        .await?;
    let remaining = sqlx::query_as(
        "SELECT id, name FROM companies WHERE db_server_id = $1 AND deleted_at IS NULL
          ORDER BY created_at, id",
    )
    .bind(server.id)
    .fetch_all(central)
    .await?;
    record(fleet, "server.drained", server.id, &server.name).await;
    Ok(Drained {
        id: server.id,
        name: server.name,
        remaining,
    })
}

async fn record(fleet: &Fleet, action: &'static str, id: Uuid, name: &str) {
    let event = audit::PlatformEvent {
        action,
        actor_user_id: None,
        company_id: None,
        client_addr: None,
        details: serde_json::json!({ "serverId": id, "name": name }),
    };
    if let Err(error) = audit::record(&fleet.databases.central, event).await {
        tracing::warn!(%error, "platform audit write failed");
    }
}
