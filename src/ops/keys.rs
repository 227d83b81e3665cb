//! `medicalpro keys rotate`: re-seals every stored clinic database password
//! with a new master key, in one central transaction (all or nothing).
//! Passwords are opened with the configured keys (`MASTER_KEY`, then
//! `MASTER_KEY_PREVIOUS`), so a rotation that was interrupted, or a clinic
//! provisioned by a server still on the old key, is finished by running it
//! again. `docs/operations.md` gives the rollout without downtime.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

use super::Fleet;
use crate::central::audit;
use crate::crypto::MasterKey;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rotation {
    /// Clinic passwords now sealed with the new key.
    pub resealed: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    #[error("the stored passwords of {} clinic(s) open with neither MASTER_KEY nor MASTER_KEY_PREVIOUS ({}); nothing was changed", .0.len(), list(.0))]
    Unopenable(Vec<Uuid>),
    #[error("central database")]
    Database(#[from] sqlx::Error),
}

fn list(ids: &[Uuid]) -> String {
    ids.iter()
        .map(Uuid::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Re-seals every clinic password with `new_key`.
pub async fn rotate(fleet: &Fleet, new_key: &MasterKey) -> Result<Rotation, RotateError> {
    let keyring = fleet.settings.keyring();
    let mut tx = fleet.databases.central.begin().await?;
    let rows: Vec<(Uuid, Vec<u8>)> = sqlx::query_as(
        "SELECT id, db_password_sealed FROM companies
          WHERE db_password_sealed IS NOT NULL ORDER BY id FOR UPDATE",
    )
    .fetch_all(&mut *tx)
    .await?;
    let mut resealed = Vec::with_capacity(rows.len());
    let mut unopenable = Vec::new();
    for (id, sealed) in rows {
        match keyring.open(&sealed, id.as_bytes()) {
            Ok(password) => resealed.push((id, new_key.seal(&password, id.as_bytes()))),
            Err(_) => unopenable.push(id),
        }
    }
    if !unopenable.is_empty() {
        return Err(RotateError::Unopenable(unopenable));
    }
    for (id, sealed) in &resealed {
        sqlx::query(
            "UPDATE companies SET db_password_sealed = $2, updated_at = now() WHERE id = $1",
        )
        .bind(id)
        .bind(sealed)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    let event = audit::PlatformEvent {
        action: "keys.rotated",
        actor_user_id: None,
        company_id: None,
        client_addr: None,
        details: json!({"resealed": resealed.len()}),
    };
    if let Err(error) = audit::record(&fleet.databases.central, event).await {
        tracing::warn!(%error, "platform audit write failed");
    }
    tracing::info!(resealed = resealed.len(), "master key rotated");
    Ok(Rotation {
        resealed: resealed.len(),
    })
}

/// The embedded mode's key file (`DATA_DIR/master_key`), replaced in two
/// steps around a rotation: the new key is written beside it first, and
/// moved over it once the rotation is committed.
pub struct KeyFile {
    path: PathBuf,
    next: PathBuf,
}

impl KeyFile {
    /// Writes `key` to `<path>.next` (mode 0600).
    pub fn prepare(path: &Path, key: &MasterKey) -> anyhow::Result<Self> {
        let mut next = path.as_os_str().to_owned();
        next.push(".next");
        let next = PathBuf::from(next);
        let mut file = fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(&next)
            .with_context(|| format!("writing {}", next.display()))?;
        file.write_all(key.to_base64().as_bytes())?;
        file.sync_all()?;
        Ok(Self {
            path: path.to_owned(),
            next,
        })
    }

    /// Puts the new key in place of the old one.
    pub fn commit(self) -> anyhow::Result<()> {
        fs::rename(&self.next, &self.path)
            .with_context(|| format!("replacing {}", self.path.display()))
    }

    pub fn abandon(self) {
        let _ = fs::remove_file(&self.next);
    }
}
