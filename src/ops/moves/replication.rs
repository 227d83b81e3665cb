//! The replication of a move: the publication on the source, the
//! subscription on the target, waiting for the copy and the catch-up, and
//! dropping all of it (slots included) afterwards or on rollback.

use std::time::{Duration, Instant};

use anyhow::Context;
use sqlx::Connection;

use super::{MoveError, Plan, POLL};
use crate::ops::{connect, Fleet};
use crate::tenancy::ddl;
use crate::tenancy::naming::{quote_ident, quote_literal};

/// The product's tables whose rows move (the migration ledger is the
/// target's own).
pub(super) fn moved_tables() -> impl Iterator<Item = &'static str> {
    ddl::TABLE_GRANTS
        .iter()
        .map(|(table, _)| *table)
        .filter(|table| *table != "_sqlx_migrations")
}

/// The publication on the source and the subscription on the target.
pub(super) async fn subscribe(fleet: &Fleet, plan: &Plan) -> Result<(), MoveError> {
    let name = plan.replication_name();
    let mut source = connect(&ddl::admin_session(
        plan.source_admin(fleet).database(&plan.database),
    ))
    .await?;
    let published = async {
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)")
                .bind(&name)
                .fetch_one(&mut source)
                .await?;
        if !exists {
            let tables: Vec<String> = moved_tables()
                .map(|t| format!("public.{}", quote_ident(t)))
                .collect();
            ddl::run(
                &mut source,
                &format!(
                    "CREATE PUBLICATION {} FOR TABLE {}",
                    quote_ident(&name),
                    tables.join(", ")
                ),
            )
            .await
            .context("creating the publication on the source (wal_level must be logical)")?;
        }
        Ok::<_, anyhow::Error>(())
    }
    .await;
    let _ = source.close().await;
    published?;
    let conninfo = source_conninfo(fleet, plan)?;
    let mut target = connect(&ddl::admin_session(
        plan.target_admin(fleet).database(&plan.database),
    ))
    .await?;
    let subscribed = async {
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_subscription WHERE subname = $1)")
                .bind(&name)
                .fetch_one(&mut target)
                .await?;
        if !exists {
            ddl::run(
                &mut target,
                &format!(
                    "CREATE SUBSCRIPTION {name} CONNECTION {} PUBLICATION {name} \
                     WITH (copy_data = true)",
                    quote_literal(&conninfo),
                    name = quote_ident(&name)
                ),
            )
            .await
            .context("creating the subscription on the target")?;
        }
        Ok::<_, anyhow::Error>(())
    }
    .await;
    let _ = target.close().await;
    Ok(subscribed?)
}

/// The admin's URI on the source database, as the target server reaches it.
fn source_conninfo(fleet: &Fleet, plan: &Plan) -> anyhow::Result<String> {
    let mut url =
        url::Url::parse(&fleet.settings.admin_url).context("DATABASE_URL is not a valid URL")?;
    url.set_host(Some(&plan.source_host))
        .context("source host")?;
    let _ = url.set_port(u16::try_from(plan.source_port).ok());
    url.set_path(&format!("/{}", plan.database));
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(key, _)| {
            [
                "sslmode",
                "sslrootcert",
                "sslcert",
                "sslkey",
                "connect_timeout",
            ]
            .contains(&key.as_ref())
        })
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    url.set_query(None);
    if !kept.is_empty() {
        url.query_pairs_mut().extend_pairs(kept);
    }
    url.query_pairs_mut()
        .append_pair("application_name", &plan.replication_name());
    Ok(url.to_string())
}

/// Waits until every table's initial copy is done.
pub(super) async fn wait_synced(
    fleet: &Fleet,
    plan: &Plan,
    timeout: Duration,
) -> Result<(), MoveError> {
    let name = plan.replication_name();
    let wanted = moved_tables().count() as i64;
    let mut target = connect(&ddl::admin_session(
        plan.target_admin(fleet).database(&plan.database),
    ))
    .await?;
    let deadline = Instant::now() + timeout;
    let waited = loop {
        let ready: Result<i64, sqlx::Error> = sqlx::query_scalar(
            "SELECT count(*) FROM pg_subscription_rel r JOIN pg_subscription s ON s.oid = r.srsubid
              WHERE s.subname = $1 AND r.srsubstate = 'r'",
        )
        .bind(&name)
        .fetch_one(&mut target)
        .await;
        match ready {
            Ok(ready) if ready >= wanted => break Ok(()),
            Ok(ready) if Instant::now() > deadline => {
                break Err(anyhow::anyhow!(
                    "the initial copy did not finish within {} s ({ready} of {wanted} tables; see the target server's log)",
                    timeout.as_secs()
                ))
            }
            Ok(_) => tokio::time::sleep(POLL).await,
            Err(error) => break Err(error.into()),
        }
    };
    let _ = target.close().await;
    Ok(waited?)
}

/// Waits until the target has applied everything the source has written so far.
pub(super) async fn catch_up(
    fleet: &Fleet,
    plan: &Plan,
    timeout: Duration,
) -> Result<(), MoveError> {
    let name = plan.replication_name();
    let mut source = connect(&plan.source_admin(fleet)).await?;
    let deadline = Instant::now() + timeout;
    let waited = async {
        let lsn: String = sqlx::query_scalar("SELECT pg_current_wal_lsn()::text")
            .fetch_one(&mut source)
            .await?;
        loop {
            let done: Option<bool> = sqlx::query_scalar(
                "SELECT confirmed_flush_lsn >= $1::pg_lsn FROM pg_replication_slots WHERE slot_name = $2",
            )
            .bind(&lsn)
            .bind(&name)
            .fetch_optional(&mut source)
            .await?
            .flatten();
            match done {
                Some(true) => return Ok(()),
                None => anyhow::bail!("the replication slot {name} is missing on the source"),
                Some(false) if Instant::now() > deadline => {
                    anyhow::bail!("the target did not catch up within {} s", timeout.as_secs())
                }
                Some(false) => tokio::time::sleep(POLL).await,
            }
        }
    }
    .await;
    let _ = source.close().await;
    Ok(waited?)
}

/// Whether the move's replication slot is still on the source (not yet
/// dropped by an earlier run of the move's end).
pub(super) async fn slot_exists(fleet: &Fleet, plan: &Plan) -> Result<bool, MoveError> {
    let mut source = connect(&plan.source_admin(fleet)).await?;
    let exists = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)",
    )
    .bind(plan.replication_name())
    .fetch_one(&mut source)
    .await;
    let _ = source.close().await;
    Ok(exists?)
}

/// Drops the subscription (on the target), then the publication and any
/// slot left of it (on the source). Each only if it is there.
pub(super) async fn drop_replication(fleet: &Fleet, plan: &Plan) -> Result<(), MoveError> {
    let name = plan.replication_name();
    let mut target = connect(&plan.target_admin(fleet)).await?;
    let in_database: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_subscription s JOIN pg_database d ON d.oid = s.subdbid
                         WHERE s.subname = $1 AND d.datname = $2)",
    )
    .bind(&name)
    .bind(&plan.database)
    .fetch_one(&mut target)
    .await?;
    let _ = target.close().await;
    if in_database {
        let mut target = connect(&ddl::admin_session(
            plan.target_admin(fleet).database(&plan.database),
        ))
        .await?;
        let name = quote_ident(&name);
        let dropped = async {
            ddl::run(&mut target, &format!("ALTER SUBSCRIPTION {name} DISABLE")).await?;
            ddl::run(
                &mut target,
                &format!("ALTER SUBSCRIPTION {name} SET (slot_name = NONE)"),
            )
            .await?;
            ddl::run(&mut target, &format!("DROP SUBSCRIPTION {name}")).await
        }
        .await;
        let _ = target.close().await;
        dropped?;
    }
    let mut source = connect(&plan.source_admin(fleet)).await?;
    let cleaned = async {
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                .bind(&plan.database)
                .fetch_one(&mut source)
                .await?;
        if exists {
            let mut in_source = connect(&ddl::admin_session(
                plan.source_admin(fleet).database(&plan.database),
            ))
            .await?;
            let dropped = ddl::run(
                &mut in_source,
                &format!("DROP PUBLICATION IF EXISTS {}", quote_ident(&name)),
            )
            .await;
            let _ = in_source.close().await;
            dropped?;
        }
        // The slot, and the initial copy's slots of an interrupted sync
        // (`pg_<subscription>_sync_<table>_<system>`), once their senders exit.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_replication_slots
                  WHERE database = $2 AND (slot_name = $1 OR slot_name LIKE 'pg\\_%\\_sync\\_%')",
            )
            .bind(&name)
            .bind(&plan.database)
            .fetch_one(&mut source)
            .await?;
            if left == 0 {
                break;
            }
            sqlx::query(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
                  WHERE database = $2 AND NOT active
                    AND (slot_name = $1 OR slot_name LIKE 'pg\\_%\\_sync\\_%')",
            )
            .bind(&name)
            .bind(&plan.database)
            .execute(&mut source)
            .await?;
            if Instant::now() > deadline {
                anyhow::bail!("the replication slot {name} on the source is still in use");
            }
            tokio::time::sleep(POLL).await;
        }
        Ok::<_, anyhow::Error>(())
    }
    .await;
    let _ = source.close().await;
    Ok(cleaned?)
}
