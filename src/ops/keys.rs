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
//!
//! On the shared tier the login roles are the pods': each pod's password is
//! renewed in the same three steps (`pods.db_password_next_sealed`), and a
//! shared clinic, which has no password, only has its erasure key
//! re-sealed.

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
    /// None on the shared tier (the pod's login is rotated on its own).
    db_password_sealed: Option<Vec<u8>>,
    db_password_next_sealed: Option<Vec<u8>>,
    erasure_key_sealed: Option<Vec<u8>>,
}

/// A pod's login, as a rotation reads it.
#[derive(sqlx::FromRow)]
struct PodLogin {
    id: Uuid,
    host: String,
    port: i32,
    db_user: String,
    db_password_sealed: Vec<u8>,
    db_password_next_sealed: Option<Vec<u8>>,
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
    for pod in pods_not_sealed_with(fleet, new_key).await? {
        if let Err(error) = rotate_pod(fleet, new_key, &pod).await {
            tracing::error!(pod = %pod.db_user, error = format!("{error:#}"), "pod password rotation failed");
            failed.push(RotationFailure {
                clinic_id: pod.id,
                error: format!("pod {}: {error:#}", pod.db_user),
            });
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
          ORDER BY id",
    )
    .fetch_all(&fleet.databases.central)
    .await?;
    Ok(clinics
        .into_iter()
        .filter(|clinic| {
            let opens = |sealed: &[u8]| key.open(sealed, clinic.id.as_bytes()).is_ok();
            clinic.db_password_next_sealed.is_some()
                || clinic
                    .db_password_sealed
                    .as_deref()
                    .is_some_and(|p| !opens(p))
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
    // A shared clinic has no password of its own (its pod's is rotated).
    let next_sealed = match &clinic.db_password_sealed {
        Some(_) => Some(
            renew_password(
                fleet,
                new_key,
                &Login {
                    table: "companies",
                    id: clinic.id,
                    host: &clinic.db_host,
                    port: clinic.db_port,
                    role: &clinic.db_user,
                    next_sealed: clinic.db_password_next_sealed.as_deref(),
                },
            )
            .await?,
        ),
        None => None,
    };
    sqlx::query(
        "UPDATE companies
            SET db_password_sealed = COALESCE($2, db_password_sealed), db_password_next_sealed = NULL,
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

/// A login role whose password a rotation renews: a dedicated clinic's
/// (`companies`) or a pod's (`pods`); its row's id is the sealing's
/// associated data.
struct Login<'a> {
    table: &'static str,
    id: Uuid,
    host: &'a str,
    port: i32,
    role: &'a str,
    next_sealed: Option<&'a [u8]>,
}

/// Steps 1 and 2: the next password stored, sealed with `new_key`, then
/// set on the role; returns it sealed, for step 3.
async fn renew_password(
    fleet: &Fleet,
    new_key: &MasterKey,
    login: &Login<'_>,
) -> anyhow::Result<Vec<u8>> {
    let context = login.id.as_bytes();
    // A password already being rotated in is kept: servers may use it.
    let resumed = login
        .next_sealed
        .and_then(|sealed| {
            new_key
                .open(sealed, context)
                .or_else(|_| fleet.settings.keys.open(sealed, context))
                .ok()
        })
        .and_then(|password| String::from_utf8(password).ok());
    let password = resumed.unwrap_or_else(|| random_token(32));
    let next_sealed = new_key.seal(password.as_bytes(), context);
    // `table` is one of two constants.
    sqlx::query(&format!(
        "UPDATE {} SET db_password_next_sealed = $2 WHERE id = $1",
        login.table
    ))
    .bind(login.id)
    .bind(&next_sealed)
    .execute(&fleet.databases.central)
    .await?;
    let mut admin = fleet.admin_on_server(login.host, login.port).await?;
    let changed = ddl::set_password(&mut admin, login.role, &password).await;
    let _ = sqlx::Connection::close(admin).await;
    changed?;
    Ok(next_sealed)
}

/// Pods whose password is not sealed with `key`, or is being rotated.
async fn pods_not_sealed_with(
    fleet: &Fleet,
    key: &MasterKey,
) -> Result<Vec<PodLogin>, sqlx::Error> {
    let pods: Vec<PodLogin> = sqlx::query_as(
        "SELECT p.id, s.host, s.port, p.db_user, p.db_password_sealed, p.db_password_next_sealed
           FROM pods p JOIN db_servers s ON s.id = p.db_server_id
          WHERE p.is_ready ORDER BY p.created_at",
    )
    .fetch_all(&fleet.databases.central)
    .await?;
    Ok(pods
        .into_iter()
        .filter(|pod| {
            pod.db_password_next_sealed.is_some()
                || key
                    .open(&pod.db_password_sealed, pod.id.as_bytes())
                    .is_err()
        })
        .collect())
}

/// The three steps of one pod.
async fn rotate_pod(fleet: &Fleet, new_key: &MasterKey, pod: &PodLogin) -> anyhow::Result<()> {
    let next_sealed = renew_password(
        fleet,
        new_key,
        &Login {
            table: "pods",
            id: pod.id,
            host: &pod.host,
            port: pod.port,
            role: &pod.db_user,
            next_sealed: pod.db_password_next_sealed.as_deref(),
        },
    )
    .await?;
    sqlx::query(
        "UPDATE pods SET db_password_sealed = $2, db_password_next_sealed = NULL WHERE id = $1",
    )
    .bind(pod.id)
    .bind(&next_sealed)
    .execute(&fleet.databases.central)
    .await?;
    Ok(())
}
