//! `medicalpro audit verify`: walks a clinic's audit chain (as the admin
//! role, which owns the trail) and checks it against the last head recorded
//! in the central database, so that removing the newest rows, which the
//! chain alone cannot reveal, is caught too. A sound chain is anchored anew.
//! Pending events (appended by requests, not yet chained) are sealed first.
//!
//! The head recorded last is either an anchor (`audit.anchored`, left by a
//! verification) or a restore (`audit.restored`, see [`record_restore`]):
//! a restore puts a backup's chain in place, so the rows anchored since
//! the backup are legitimately gone, and the chain continues from the
//! restored head. An edit of any row, before or after the restore, still
//! breaks the chain. `medicalpro doctor` runs the cheap part read-only
//! ([`check_recent`]): the recorded head and every row after it.

use serde::Serialize;
use serde_json::json;
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgConnection, PgPool, Row};

use crate::central::restores::{self, ChainRestore, NewChainRestore};
use crate::central::{audit, companies, Databases};
use crate::clinic::audit::{seal, verify_chain, verify_chain_after, BrokenLink};
use crate::tenancy::naming::ClinicId;

/// The outcome for one clinic.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    pub clinic_id: ClinicId,
    pub events: i64,
    /// The first broken link, `None` when the trail is intact.
    pub broken: Option<BrokenLink>,
    /// The clinic's most recent restore, if it was ever restored.
    pub restored: Option<ChainRestore>,
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("clinic {0} has no provisioned database")]
    UnknownClinic(ClinicId),
    #[error("database")]
    Database(#[from] sqlx::Error),
}

/// Verifies one clinic's trail and, when sound, anchors its head.
pub async fn verify_clinic(
    databases: &Databases,
    id: ClinicId,
) -> Result<Verification, VerifyError> {
    let pool = open_trail(databases, id).await?;
    let result = check(databases, &pool, id).await;
    pool.close().await;
    result
}

/// Records that the clinic's trail was just restored from `backup_file`
/// (whose SHA-256 is `backup_sha256`) by `operator`: seals what the restore
/// left pending, then records the head of the restored chain, from which
/// the chain continues.
pub async fn record_restore(
    databases: &Databases,
    id: ClinicId,
    operator: &str,
    backup_file: &str,
    backup_sha256: &str,
) -> Result<ChainRestore, VerifyError> {
    let pool = open_trail(databases, id).await?;
    let head = async {
        let mut conn = pool.acquire().await?;
        seal(&mut conn).await?;
        head(&mut conn).await
    }
    .await;
    pool.close().await;
    let restore = NewChainRestore {
        company_id: id.0,
        operator,
        backup_file,
        backup_sha256,
        head: head?.map(|(id, hash)| (id, crate::crypto::hex(&hash))),
    };
    Ok(restores::record(&databases.central, &restore).await?)
}

/// One connection to the clinic's database as the admin role, its schema
/// on the search path (after `pg_catalog`).
async fn open_trail(databases: &Databases, id: ClinicId) -> Result<PgPool, VerifyError> {
    let placement = companies::placement(&databases.central, id)
        .await?
        .ok_or(VerifyError::UnknownClinic(id))?;
    Ok(PgPoolOptions::new()
        .max_connections(1)
        .connect_with(crate::tenancy::ddl::admin_session_in(
            databases
                .admin_on_server(&placement.db_host, placement.db_port)
                .database(&placement.db_name),
            placement.schema(),
        ))
        .await?)
}

async fn check(
    databases: &Databases,
    pool: &PgPool,
    id: ClinicId,
) -> Result<Verification, VerifyError> {
    let mut conn = pool.acquire().await?;
    seal(&mut conn).await?;
    let report = verify_chain(&mut conn).await?;
    let mut broken = report.broken;
    let (recorded, restored) = recorded_head(&databases.central, id).await?;
    if broken.is_none() {
        if let Some(recorded) = &recorded {
            broken = check_head(&mut conn, recorded).await?.err();
        }
    }
    if broken.is_none() {
        if let Some((last_id, last_hash)) = head(&mut conn).await? {
            let event = audit::PlatformEvent {
                action: "audit.anchored",
                actor_user_id: None,
                company_id: Some(id.0),
                client_addr: None,
                details: json!({ "lastId": last_id, "lastHash": crate::crypto::hex(&last_hash) }),
            };
            audit::record(&databases.central, event).await?;
        }
    }
    Ok(Verification {
        clinic_id: id,
        events: report.events,
        broken,
        restored,
    })
}

/// Read-only, on any connection that may read the trail (the clinic's login
/// role's will do): the head central recorded last is still there,
/// unchanged, and every chained row after it links and hashes. Rows before
/// that head are left to `audit verify`.
pub async fn check_recent(
    central: &PgPool,
    conn: &mut PgConnection,
    id: ClinicId,
) -> Result<Option<BrokenLink>, sqlx::Error> {
    let (recorded, _) = recorded_head(central, id).await?;
    let after = match &recorded {
        None => None,
        Some(recorded) => match check_head(conn, recorded).await? {
            Ok(after) => after,
            Err(broken) => return Ok(Some(broken)),
        },
    };
    Ok(verify_chain_after(conn, after).await?.broken)
}

/// A chain head central recorded: the row it names must still hash the same.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RecordedHead {
    /// `None`: a restore put an empty chain in place.
    row: Option<(i64, String)>,
    /// What recorded it, for the report of a mismatch.
    by: String,
}

/// The head central recorded last for the clinic (an anchor or a restore,
/// whichever is newer), and its most recent restore.
async fn recorded_head(
    central: &PgPool,
    id: ClinicId,
) -> Result<(Option<RecordedHead>, Option<ChainRestore>), sqlx::Error> {
    let anchor = sqlx::query(
        "SELECT id, (details->>'lastId')::bigint AS last_id, details->>'lastHash' AS last_hash
           FROM audit_logs WHERE company_id = $1 AND action = 'audit.anchored'
          ORDER BY id DESC LIMIT 1",
    )
    .bind(id.0)
    .fetch_optional(central)
    .await?
    .map(|row| {
        Ok::<_, sqlx::Error>((
            row.try_get::<i64, _>("id")?,
            row.try_get::<i64, _>("last_id")?,
            row.try_get::<String, _>("last_hash")?,
        ))
    })
    .transpose()?;
    let restore = restores::latest(central, id.0).await?;
    Ok((newest_head(anchor, restore.as_ref()), restore))
}

/// Of the last anchor (its event id, row id and hash) and the last
/// restore, the newer: the head the chain must still hold.
fn newest_head(
    anchor: Option<(i64, i64, String)>,
    restore: Option<&ChainRestore>,
) -> Option<RecordedHead> {
    let from_restore = |r: &ChainRestore| RecordedHead {
        row: r.head_id.zip(r.head_hash.clone()),
        by: format!("the restore from {}", r.backup_file),
    };
    let from_anchor = |(_, id, hash): (i64, i64, String)| RecordedHead {
        row: Some((id, hash)),
        by: "the last verification".to_owned(),
    };
    match (anchor, restore) {
        (Some(anchor), Some(restore)) if restore.audit_log_id > anchor.0 => {
            Some(from_restore(restore))
        }
        (Some(anchor), _) => Some(from_anchor(anchor)),
        (None, restore) => restore.map(from_restore),
    }
}

/// The recorded head's row and hash when it holds, else the broken link.
async fn check_head(
    conn: &mut PgConnection,
    recorded: &RecordedHead,
) -> Result<Result<Option<(i64, Vec<u8>)>, BrokenLink>, sqlx::Error> {
    let Some((id, hash)) = &recorded.row else {
        return Ok(Ok(None));
    };
    let stored: Option<Vec<u8>> = sqlx::query_scalar("SELECT hash FROM audit_events WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await?;
    Ok(match stored {
        Some(stored) if crate::crypto::hex(&stored) == *hash => Ok(Some((*id, stored))),
        _ => Err(BrokenLink {
            id: *id,
            reason: format!("the row anchored at {} is missing or altered", recorded.by),
        }),
    })
}

/// The last chained event: its id and hash.
async fn head(conn: &mut PgConnection) -> Result<Option<(i64, Vec<u8>)>, sqlx::Error> {
    sqlx::query_as("SELECT id, hash FROM audit_events ORDER BY id DESC LIMIT 1")
        .fetch_optional(conn)
        .await
}

/// Every provisioned clinic, oldest first.
pub async fn all_clinics(databases: &Databases) -> Result<Vec<ClinicId>, sqlx::Error> {
    let ids: Vec<uuid::Uuid> = sqlx::query_scalar(
        "SELECT id FROM companies WHERE provisioning_status = 'ready' AND deleted_at IS NULL ORDER BY created_at",
    )
    .fetch_all(&databases.central)
    .await?;
    Ok(ids.into_iter().map(ClinicId).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn restore(audit_log_id: i64, head: Option<(i64, &str)>) -> ChainRestore {
        ChainRestore {
            audit_log_id,
            restored_at: chrono::Utc::now(),
            operator: "ops".into(),
            backup_file: "a.dump".into(),
            backup_sha256: "00".into(),
            head_id: head.map(|(id, _)| id),
            head_hash: head.map(|(_, hash)| hash.to_owned()),
        }
    }

    #[test]
    fn the_newer_of_the_last_anchor_and_the_last_restore_is_the_head_to_hold() {
        let anchor = Some((10, 70, "aa".to_owned()));
        // Restored after the anchor: the chain continues from the restored head.
        let after = restore(11, Some((50, "bb")));
        assert_eq!(
            newest_head(anchor.clone(), Some(&after)).unwrap().row,
            Some((50, "bb".to_owned()))
        );
        // Verified after the restore: the new anchor holds.
        let before = restore(9, Some((50, "bb")));
        assert_eq!(
            newest_head(anchor.clone(), Some(&before)).unwrap().row,
            Some((70, "aa".to_owned()))
        );
        // An empty trail restored: nothing to hold yet.
        let empty = restore(12, None);
        let head = newest_head(anchor, Some(&empty)).unwrap();
        assert_eq!(head.row, None);
        assert_eq!(head.by, "the restore from a.dump");
        assert_eq!(newest_head(None, None), None);
    }
}
