//! The steps of a move that change the clinic's databases and its
//! placement: the target made, writes frozen and the source's chain
//! closed, sequences copied, both sides compared, the switch in central,
//! then the source drained, cut off and kept aside or dropped (or, before
//! the switch, everything undone).

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::Context;
use serde_json::json;
use sqlx::postgres::PgConnectOptions;
use sqlx::Connection;

use super::replication::{catch_up, drop_replication, moved_tables, slot_exists};
use super::{MoveError, Plan, CATCH_UP, DRAIN, POLL};
use crate::central::audit;
use crate::central::notify::{self, Change};
use crate::crypto::random_token;
use crate::migrations;
use crate::ops::{connect, Fleet};
use crate::tenancy::ddl;
use crate::tenancy::naming::{quote_ident, quote_literal};

type Census = (BTreeMap<String, i64>, Option<(i64, String)>);

/// How far ahead of the source's the target's pending-event sequence
/// starts: reads still served by the source after the verification append
/// pending events there, which replication brings to the target, where the
/// instances already switched append their own. Their positions only order
/// their sealing, so a gap is harmless, a collision would stop replication.
pub(super) const PENDING_HEADROOM: i64 = 1 << 32;

/// The table whose rows keep arriving from the source's reads until it is
/// cut off: not compared.
const PENDING: &str = "audit_events_pending";

/// The roles, database and schema on the target, as provisioning makes them.
pub(super) async fn prepare(fleet: &Fleet, plan: &Plan) -> Result<(), MoveError> {
    let mut admin = connect(&plan.target_admin(fleet)).await?;
    let made = async {
        ddl::create_roles(&mut admin, &plan.roles, &plan.target_password)
            .await
            .context("creating the clinic's roles on the target server")?;
        ddl::create_database(&mut admin, &plan.database, &plan.roles, "template0")
            .await
            .context("creating the clinic's database on the target server")?;
        Ok::<_, anyhow::Error>(())
    }
    .await;
    let _ = admin.close().await;
    made?;
    let mut as_owner = connect(&ddl::owner_session(
        plan.target_admin(fleet).database(&plan.database),
        &plan.roles.owner,
    ))
    .await?;
    let laid_out = async {
        migrations::run_on(&migrations::CLINIC, &mut as_owner)
            .await
            .context("migrating the target database")?;
        ddl::install_audit_trail(&mut as_owner, "public").await?;
        ddl::lock_down(&mut as_owner, &plan.roles.login, "public").await?;
        Ok::<_, anyhow::Error>(())
    }
    .await;
    let _ = as_owner.close().await;
    Ok(laid_out?)
}

/// As the source's owner: no more writes by the login role, and no more
/// links to the audit chain (the owner's INSERT on `audit_events` revoked,
/// which the sealer needs): reads go on, their events pending, for the
/// target to chain. Both are grants, so they outlive this process.
pub(super) async fn freeze(fleet: &Fleet, plan: &Plan) -> Result<(), MoveError> {
    let mut as_owner = connect(&ddl::owner_session(
        plan.source_admin(fleet).database(&plan.database),
        &plan.roles.owner,
    ))
    .await?;
    let frozen = ddl::run(
        &mut as_owner,
        &format!(
            "REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA public FROM {};\n\
             REVOKE INSERT ON public.audit_events FROM CURRENT_USER;",
            quote_ident(&plan.roles.login)
        ),
    )
    .await;
    let _ = as_owner.close().await;
    Ok(frozen?)
}

/// After the switch, waits (at most [`DRAIN`]) until no session of the login
/// role is left on the source: every instance told has closed its
/// connections there, its requests under way done.
async fn drain(fleet: &Fleet, plan: &Plan) -> Result<(), MoveError> {
    let mut admin = connect(&plan.source_admin(fleet)).await?;
    let deadline = Instant::now() + DRAIN;
    let drained = async {
        loop {
            let left: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND usename = $2",
            )
            .bind(&plan.database)
            .bind(&plan.roles.login)
            .fetch_one(&mut admin)
            .await?;
            if left == 0 {
                return Ok::<_, sqlx::Error>(());
            }
            if Instant::now() > deadline {
                tracing::warn!(clinic.id = %plan.clinic, sessions = left, "sessions left on the source after the switch: ended");
                return Ok(());
            }
            tokio::time::sleep(POLL).await;
        }
    }
    .await;
    let _ = admin.close().await;
    Ok(drained?)
}

/// The source's login role gets a password nobody knows, and its sessions
/// end: nothing reaches the source any more, and an instance that missed
/// the switch's notice has its password refused and reads the placement
/// again. Nothing to do once the role is gone (`--drop-source`).
async fn cut_off(fleet: &Fleet, plan: &Plan) -> Result<(), MoveError> {
    let mut admin = connect(&plan.source_admin(fleet)).await?;
    let done = async {
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
                .bind(&plan.roles.login)
                .fetch_one(&mut admin)
                .await?;
        if exists {
            ddl::set_password(&mut admin, &plan.roles.login, &random_token(32)).await?;
        }
        sqlx::query(
            "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity
              WHERE datname = $1 AND usename = $2",
        )
        .bind(&plan.database)
        .bind(&plan.roles.login)
        .execute(&mut admin)
        .await?;
        Ok::<_, sqlx::Error>(())
    }
    .await;
    let _ = admin.close().await;
    Ok(done?)
}

/// Every sequence of the source at its position on the target.
pub(super) async fn copy_sequences(fleet: &Fleet, plan: &Plan) -> Result<(), MoveError> {
    let mut source = connect(&ddl::admin_session(
        plan.source_admin(fleet).database(&plan.database),
    ))
    .await?;
    let positions: Result<Vec<(String, Option<i64>, bool)>, _> = sqlx::query_as(
        "SELECT pg_catalog.format('%I.%I', schemaname, sequencename), last_value,
                pg_catalog.format('%I.%I', schemaname, sequencename)::regclass
                  = pg_catalog.pg_get_serial_sequence('public.audit_events_pending', 'id')::regclass
           FROM pg_catalog.pg_sequences WHERE schemaname = 'public'",
    )
    .fetch_all(&mut source)
    .await;
    let _ = source.close().await;
    let positions = positions?;
    let mut target = connect(&ddl::admin_session(
        plan.target_admin(fleet).database(&plan.database),
    ))
    .await?;
    let copied = async {
        for (sequence, last_value, pending) in &positions {
            let headroom = if *pending { PENDING_HEADROOM } else { 0 };
            // Never called on the source: the fresh target one is alike
            // (but for the pending events' headroom).
            if let Some(value) = last_value
                .map(|value| value + headroom)
                .or(pending.then_some(headroom))
            {
                sqlx::query("SELECT pg_catalog.setval($1::regclass, $2, true)")
                    .bind(sequence)
                    .bind(value)
                    .execute(&mut target)
                    .await?;
            }
        }
        Ok::<_, sqlx::Error>(())
    }
    .await;
    let _ = target.close().await;
    Ok(copied?)
}

/// Rows per table and the audit chain's head, which must be the same on
/// both sides (pending events aside: reads still add them on the source).
pub(super) async fn compare(
    fleet: &Fleet,
    plan: &Plan,
) -> Result<(BTreeMap<String, i64>, Option<i64>), MoveError> {
    let source = census(&ddl::admin_session(
        plan.source_admin(fleet).database(&plan.database),
    ))
    .await?;
    let target = census(&ddl::admin_session(
        plan.target_admin(fleet).database(&plan.database),
    ))
    .await?;
    for (table, rows) in source.0.iter().filter(|(table, _)| *table != PENDING) {
        let on_target = target.0.get(table).copied().unwrap_or(-1);
        if *rows != on_target {
            return Err(anyhow::anyhow!(
                "table {table} has {rows} rows on the source and {on_target} on the target"
            )
            .into());
        }
    }
    if source.1 != target.1 {
        return Err(anyhow::anyhow!(
            "the audit chain's head differs: {:?} on the source, {:?} on the target",
            source.1,
            target.1
        )
        .into());
    }
    Ok((source.0, source.1.map(|(id, _)| id)))
}

pub(super) async fn census(options: &PgConnectOptions) -> anyhow::Result<Census> {
    let mut conn = connect(options).await?;
    let counted = async {
        let mut rows = BTreeMap::new();
        for table in moved_tables() {
            let count: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM public.{}", quote_ident(table)))
                .fetch_one(&mut conn)
                .await?;
            rows.insert(table.to_owned(), count);
        }
        let head: Option<(i64, String)> = sqlx::query_as(
            "SELECT id, pg_catalog.encode(hash, 'hex') FROM public.audit_events ORDER BY id DESC LIMIT 1",
        )
        .fetch_optional(&mut conn)
        .await?;
        Ok::<_, sqlx::Error>((rows, head))
    }
    .await;
    let _ = conn.close().await;
    Ok(counted?)
}

/// The placement and the step, in one central transaction.
pub(super) async fn switch(fleet: &Fleet, plan: &Plan) -> Result<(), MoveError> {
    let mut tx = fleet.databases.central.begin().await?;
    let switched = sqlx::query(
        "UPDATE companies
            SET db_server_id = $2, db_host = $3, db_port = $4, db_password_sealed = $5,
                db_password_next_sealed = NULL, updated_at = now()
          WHERE id = $1 AND db_host = $6 AND db_port = $7",
    )
    .bind(plan.clinic.0)
    .bind(plan.target.id)
    .bind(&plan.target.host)
    .bind(plan.target.port)
    .bind(&plan.target_password_sealed)
    .bind(&plan.source_host)
    .bind(plan.source_port)
    .execute(&mut *tx)
    .await?;
    if switched.rows_affected() != 1 {
        return Err(anyhow::anyhow!("the clinic's placement changed during the move").into());
    }
    sqlx::query("UPDATE clinic_moves SET step = 'switched', updated_at = now() WHERE id = $1")
        .bind(plan.move_id)
        .execute(&mut *tx)
        .await?;
    // Every instance closes the clinic's connections and reads the new
    // placement at once (those that miss it find the old password refused).
    notify::send(&mut *tx, Change::Placement(plan.clinic)).await?;
    tx.commit().await?;
    tracing::info!(clinic.id = %plan.clinic, move.id = %plan.move_id, server = %plan.target.name, "clinic switched to its new server");
    Ok(())
}

/// After the switch: the source drained and cut off, the target caught up
/// a last time, replication dropped, the source dropped or kept aside.
/// Safe to repeat (a move interrupted here is finished when run again).
pub(super) async fn finish(fleet: &Fleet, plan: &Plan) -> Result<Option<String>, MoveError> {
    drain(fleet, plan).await?;
    cut_off(fleet, plan).await?;
    if slot_exists(fleet, plan).await? {
        catch_up(fleet, plan, CATCH_UP).await?;
    }
    drop_replication(fleet, plan).await?;
    let mut admin = connect(&plan.source_admin(fleet)).await?;
    let kept = async {
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                .bind(&plan.database)
                .fetch_one(&mut admin)
                .await?;
        let kept_name = plan.kept_name(fleet);
        if plan.drop_source {
            ddl::drop_database(&mut admin, &plan.database).await?;
            ddl::drop_database(&mut admin, &kept_name).await?;
            ddl::drop_roles(&mut admin, &plan.roles).await?;
            return Ok::<_, anyhow::Error>(None);
        }
        if exists {
            ddl::shut_database(&mut admin, &plan.database, 0).await?;
            ddl::run(
                &mut admin,
                &format!(
                    "ALTER DATABASE {} RENAME TO {}",
                    quote_ident(&plan.database),
                    quote_ident(&kept_name)
                ),
            )
            .await?;
            let comment = format!(
                "clinic {} moved to server {} (move {}) at {}",
                plan.clinic,
                plan.target.name,
                plan.move_id,
                chrono::Utc::now().to_rfc3339()
            );
            ddl::run(
                &mut admin,
                &format!(
                    "COMMENT ON DATABASE {} IS {}",
                    quote_ident(&kept_name),
                    quote_literal(&comment)
                ),
            )
            .await?;
            ddl::reopen_database(&mut admin, &kept_name).await?;
        }
        ddl::run(
            &mut admin,
            &format!("ALTER ROLE {} NOLOGIN", quote_ident(&plan.roles.login)),
        )
        .await
        .ok();
        Ok(Some(kept_name))
    }
    .await;
    let _ = admin.close().await;
    let kept = kept?;
    sqlx::query(
        "UPDATE clinic_moves SET step = 'done', source_kept_as = $2, updated_at = now(),
                finished_at = now() WHERE id = $1",
    )
    .bind(plan.move_id)
    .bind(&kept)
    .execute(&fleet.databases.central)
    .await?;
    let event = audit::PlatformEvent {
        action: "clinic.moved",
        actor_user_id: None,
        company_id: Some(plan.clinic.0),
        client_addr: None,
        details: json!({
            "moveId": plan.move_id,
            "from": format!("{}:{}", plan.source_host, plan.source_port),
            "toServer": plan.target.name,
            "sourceKeptAs": kept,
        }),
    };
    if let Err(error) = audit::record(&fleet.databases.central, event).await {
        tracing::warn!(clinic.id = %plan.clinic, %error, "platform audit write failed");
    }
    Ok(kept)
}

/// Before the switch: everything the move made is removed and the source
/// serves as before (its grants and its password back). Safe to repeat.
pub(super) async fn undo(fleet: &Fleet, plan: &Plan) -> Result<(), MoveError> {
    drop_replication(fleet, plan).await?;
    let mut target = connect(&plan.target_admin(fleet)).await?;
    let dropped = async {
        ddl::drop_database(&mut target, &plan.database).await?;
        ddl::drop_roles(&mut target, &plan.roles).await
    }
    .await;
    let _ = target.close().await;
    dropped.context("dropping the move's database and roles on the target")?;
    let clinic = fleet.clinic(plan.clinic).await?;
    let password = fleet
        .settings
        .keys
        .open(
            clinic.db_password_sealed.as_deref().unwrap_or_default(),
            plan.clinic.0.as_bytes(),
        )
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| {
            anyhow::anyhow!("the clinic's stored password cannot be opened with MASTER_KEY")
        })?;
    let mut as_owner = connect(&ddl::owner_session(
        plan.source_admin(fleet).database(&plan.database),
        &plan.roles.owner,
    ))
    .await?;
    let unfrozen = async {
        ddl::run(
            &mut as_owner,
            "GRANT INSERT ON public.audit_events TO CURRENT_USER",
        )
        .await?;
        ddl::lock_down(&mut as_owner, &plan.roles.login, "public").await
    }
    .await;
    let _ = as_owner.close().await;
    unfrozen.context("giving the owner and the login role their grants back on the source")?;
    let mut admin = connect(&plan.source_admin(fleet)).await?;
    let restored = async {
        ddl::set_password(&mut admin, &plan.roles.login, &password).await?;
        ddl::run(
            &mut admin,
            &format!("ALTER ROLE {} LOGIN", quote_ident(&plan.roles.login)),
        )
        .await
    }
    .await;
    let _ = admin.close().await;
    restored.context("giving the login role its password back on the source")?;
    Ok(())
}
