//! `medicalpro keys rotate`: gives every clinic's login role a new database
//! password, sealed with a new master key, so that neither an old key nor an
//! old copy of central opens any clinic database afterwards.
//!
//! Each clinic is rotated in three steps, each durable before the next:
//! 1. the new password, sealed, is stored beside the one in place
//!    (`companies.db_password_next_sealed`);
//! 2. the role's password is changed on the clinic's server;
//! 3. the new password takes the place of the old one in central (and the
//!    clinic's other sealed secret, its erasure key, is re-sealed).
//!
//! A server finding its password refused reads both from central and keeps
//! the one that logs in, so a clinic stays reachable at every moment, and a
//! rotation interrupted anywhere is finished by running it again: a clinic
//! left between steps keeps the password being rotated in. The current
//! password is never needed (the admin role sets the new one), so a rotation
//! also repairs a clinic whose stored password was lost. Clinics are done
//! one by one; one that fails is reported and the others go on.

use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

use super::Fleet;
use crate::central::audit;
use crate::crypto::{random_token, MasterKey};
use crate::tenancy::ddl;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rotation {
    /// Clinics whose password was changed and sealed with the new key.
    pub rotated: usize,
    /// Clinics that could not be rotated, with why (run again to finish).
    pub failed: Vec<RotationFailure>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RotationFailure {
    pub clinic_id: Uuid,
    pub error: String,
}

/// A clinic's row as a rotation reads it.
#[derive(sqlx::FromRow)]
struct Sealed {
    id: Uuid,
    db_host: String,
    db_port: i32,
    db_user: String,
    db_password_sealed: Vec<u8>,
    db_password_next_sealed: Option<Vec<u8>>,
    erasure_key_sealed: Option<Vec<u8>>,
}

/// Rotates every provisioned clinic's password to one sealed with `new_key`.
/// Clinics provisioned while it runs, by a server still sealing with an
/// older key, are taken in a second pass.
pub async fn rotate(fleet: &Fleet, new_key: &MasterKey) -> Result<Rotation, sqlx::Error> {
    let mut rotated = 0;
    let mut failed: Vec<RotationFailure> = Vec::new();
    for _pass in 0..2 {
        let pending = not_sealed_with(fleet, new_key).await?;
        let pending: Vec<_> = pending
            .into_iter()
            .filter(|clinic| failed.iter().all(|f| f.clinic_id != clinic.id))
            .collect();
        if pending.is_empty() {
            break;
        }
        for clinic in pending {
            match rotate_clinic(fleet, new_key, &clinic).await {
                Ok(()) => rotated += 1,
                Err(error) => {
                    tracing::error!(clinic.id = %clinic.id, error = format!("{error:#}"), "password rotation failed");
                    failed.push(RotationFailure {
                        clinic_id: clinic.id,
                        error: format!("{error:#}"),
                    });
                }
            }
        }
    }
    let event = audit::PlatformEvent {
        action: "keys.rotated",
        actor_user_id: None,
        company_id: None,
        client_addr: None,
        details: json!({"rotated": rotated, "failed": failed.len()}),
    };
    if let Err(error) = audit::record(&fleet.databases.central, event).await {
        tracing::warn!(%error, "platform audit write failed");
    }
    tracing::info!(rotated, failed = failed.len(), "clinic passwords rotated");
    Ok(Rotation { rotated, failed })
}

/// Clinics whose password is not (yet) sealed with `key` alone, or has a
/// rotation under way.
async fn not_sealed_with(fleet: &Fleet, key: &MasterKey) -> Result<Vec<Sealed>, sqlx::Error> {
    let clinics: Vec<Sealed> = sqlx::query_as(
        "SELECT id, db_host, db_port, db_user, db_password_sealed, db_password_next_sealed,
                erasure_key_sealed
           FROM companies
          WHERE provisioning_status = 'ready' AND deleted_at IS NULL
            AND db_password_sealed IS NOT NULL
          ORDER BY id",
    )
    .fetch_all(&fleet.databases.central)
    .await?;
    Ok(clinics
        .into_iter()
        .filter(|clinic| {
            let opens = |sealed: &[u8]| key.open(sealed, clinic.id.as_bytes()).is_ok();
            clinic.db_password_next_sealed.is_some()
                || !opens(&clinic.db_password_sealed)
                || clinic
                    .erasure_key_sealed
                    .as_deref()
                    .is_some_and(|key| !opens(key))
        })
        .collect())
}

/// Clinics a rotation has not finished with under the current key: their
/// password is sealed with another key, or is being rotated.
pub async fn unfinished(fleet: &Fleet) -> Result<Vec<Uuid>, sqlx::Error> {
    let current = fleet.settings.keys.current();
    Ok(not_sealed_with(fleet, &current)
        .await?
        .into_iter()
        .map(|clinic| clinic.id)
        .collect())
}

/// The three steps of one clinic (see the module documentation).
async fn rotate_clinic(fleet: &Fleet, new_key: &MasterKey, clinic: &Sealed) -> anyhow::Result<()> {
    let central = &fleet.databases.central;
    let context = clinic.id.as_bytes();
    let open = |sealed: &[u8]| {
        new_key
            .open(sealed, context)
            .or_else(|_| fleet.settings.keys.open(sealed, context))
    };
    // The clinic's erasure key must survive: refuse rather than lose it.
    let erasure_key = match &clinic.erasure_key_sealed {
        Some(sealed) => Some(open(sealed).map_err(|_| {
            anyhow::anyhow!(
                "its erasure key opens with none of the keys given: nothing was changed"
            )
        })?),
        None => None,
    };
    // A password already being rotated in is kept: servers may use it.
    let resumed = clinic
        .db_password_next_sealed
        .as_deref()
        .and_then(|sealed| open(sealed).ok())
        .and_then(|password| String::from_utf8(password).ok());
    let password = resumed.unwrap_or_else(|| random_token(32));
    let next_sealed = new_key.seal(password.as_bytes(), context);
    sqlx::query("UPDATE companies SET db_password_next_sealed = $2 WHERE id = $1")
        .bind(clinic.id)
        .bind(&next_sealed)
        .execute(central)
        .await?;

    let mut admin = fleet
        .admin_on_server(&clinic.db_host, clinic.db_port)
        .await?;
    let changed = ddl::set_password(&mut admin, &clinic.db_user, &password).await;
    let _ = sqlx::Connection::close(admin).await;
    changed?;

    sqlx::query(
        "UPDATE companies
            SET db_password_sealed = $2, db_password_next_sealed = NULL,
                erasure_key_sealed = CASE WHEN erasure_key_sealed IS NOT DISTINCT FROM $4
                                          THEN $3 ELSE erasure_key_sealed END,
                updated_at = now()
          WHERE id = $1",
    )
    .bind(clinic.id)
    .bind(&next_sealed)
    .bind(erasure_key.map(|key| new_key.seal(&key, context)))
    // An erasure key made meanwhile is kept, and re-sealed by the next pass.
    .bind(&clinic.erasure_key_sealed)
    .execute(central)
    .await?;
    Ok(())
}
