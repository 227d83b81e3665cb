//! The erasure ledger: every GDPR erasure of a clinic, recorded in central
//! without personal data, so that restoring a backup taken before an
//! erasure erases the patient again before the clinic serves (see
//! `ops::erasures`).
//!
//! An entry is the clinic id, an HMAC-SHA-256 of the patient id and the
//! time. The HMAC key is the clinic's own (random, sealed with the master
//! key like its database password), so a copy of central alone cannot tell
//! which patient ids were erased, and no key rotation changes the hashes.

use std::collections::HashSet;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use sqlx::PgPool;
use uuid::Uuid;

use crate::master_keys::MasterKeys;
use crate::tenancy::naming::ClinicId;

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("the erasure key of clinic {0} cannot be opened with the master keys")]
    Unsealable(ClinicId),
    #[error("central database")]
    Database(#[from] sqlx::Error),
}

/// A clinic's ledger, read whole: what a restore checks patients against.
pub struct Ledger {
    key: Vec<u8>,
    entries: HashSet<Vec<u8>>,
    /// When each entry was made, in the order read (for exports).
    pub erased_at: Vec<(Vec<u8>, chrono::DateTime<chrono::Utc>)>,
}

impl Ledger {
    /// Whether the patient was erased.
    pub fn holds(&self, patient: Uuid) -> bool {
        self.entries.contains(&patient_key(&self.key, patient))
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Records that `patient` of `clinic` was erased (idempotent).
pub async fn record(
    central: &PgPool,
    keys: &MasterKeys,
    clinic: ClinicId,
    patient: Uuid,
) -> Result<(), LedgerError> {
    let entry = entry_of(central, keys, clinic, patient).await?;
    sqlx::query(
        "INSERT INTO erasures (company_id, patient_key) VALUES ($1, $2)
         ON CONFLICT (company_id, patient_key) DO NOTHING",
    )
    .bind(clinic.0)
    .bind(entry)
    .execute(central)
    .await?;
    Ok(())
}

/// Takes back an entry whose erasure did not commit.
pub async fn unrecord(
    central: &PgPool,
    keys: &MasterKeys,
    clinic: ClinicId,
    patient: Uuid,
) -> Result<(), LedgerError> {
    let entry = entry_of(central, keys, clinic, patient).await?;
    sqlx::query("DELETE FROM erasures WHERE company_id = $1 AND patient_key = $2")
        .bind(clinic.0)
        .bind(entry)
        .execute(central)
        .await?;
    Ok(())
}

/// The clinic's whole ledger; `None` when it never erased anyone.
pub async fn ledger(
    central: &PgPool,
    keys: &MasterKeys,
    clinic: ClinicId,
) -> Result<Option<Ledger>, LedgerError> {
    let sealed: Option<Vec<u8>> =
        sqlx::query_scalar("SELECT erasure_key_sealed FROM companies WHERE id = $1")
            .bind(clinic.0)
            .fetch_optional(central)
            .await?
            .flatten();
    let Some(sealed) = sealed else {
        return Ok(None);
    };
    let key = keys
        .open(&sealed, clinic.0.as_bytes())
        .map_err(|_| LedgerError::Unsealable(clinic))?;
    let erased_at: Vec<(Vec<u8>, chrono::DateTime<chrono::Utc>)> = sqlx::query_as(
        "SELECT patient_key, erased_at FROM erasures WHERE company_id = $1 ORDER BY erased_at",
    )
    .bind(clinic.0)
    .fetch_all(central)
    .await?;
    Ok(Some(Ledger {
        key,
        entries: erased_at.iter().map(|(entry, _)| entry.clone()).collect(),
        erased_at,
    }))
}

/// The ledger's entry for `patient` of `clinic`: its keyed hash.
async fn entry_of(
    central: &PgPool,
    keys: &MasterKeys,
    clinic: ClinicId,
    patient: Uuid,
) -> Result<Vec<u8>, LedgerError> {
    let key = clinic_key(central, keys, clinic).await?;
    Ok(patient_key(&key, patient))
}

/// The clinic's erasure key, made (and sealed) at its first erasure: read,
/// and only when missing, made and stored.
async fn clinic_key(
    central: &PgPool,
    keys: &MasterKeys,
    clinic: ClinicId,
) -> Result<Vec<u8>, LedgerError> {
    let stored: Option<Vec<u8>> =
        sqlx::query_scalar("SELECT erasure_key_sealed FROM companies WHERE id = $1")
            .bind(clinic.0)
            .fetch_optional(central)
            .await?
            .flatten();
    let sealed = match stored {
        Some(sealed) => sealed,
        None => {
            let mut fresh = [0u8; 32];
            rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut fresh);
            // Of two first erasures at once, both read the key the first stored.
            sqlx::query_scalar(
                "UPDATE companies SET erasure_key_sealed = COALESCE(erasure_key_sealed, $2)
                  WHERE id = $1 RETURNING erasure_key_sealed",
            )
            .bind(clinic.0)
            .bind(keys.seal(&fresh, clinic.0.as_bytes()))
            .fetch_one(central)
            .await?
        }
    };
    keys.open(&sealed, clinic.0.as_bytes())
        .map_err(|_| LedgerError::Unsealable(clinic))
}

fn patient_key(key: &[u8], patient: Uuid) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(patient.as_bytes());
    mac.finalize().into_bytes().to_vec()
}
