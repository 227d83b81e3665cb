//! Argon2id password hashing, off the async threads, with a bound on the
//! hashes in flight: each holds about 19 MiB (the default memory cost) for
//! its whole run, so without one a burst of logins could take as much memory
//! as it has requests. That bound holds for memory because the process's
//! allocator (mimalloc, see `lib.rs`) gives a large block back to the
//! system when it is freed.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How long a request waits for a free hashing slot before it is refused.
pub const HASH_WAIT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// Every hashing slot stayed taken for [`HASH_WAIT`].
    #[error("too many passwords are being checked, try again shortly")]
    Busy,
    #[error("password hashing failed: {0}")]
    Failed(String),
}

/// The default hashing slots: two per CPU, enough to keep every core busy
/// while a slot changes hands.
pub fn default_max_concurrent() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()) * 2
}

/// Hashes and verifications of one server, at most `max` at once; a
/// request waits up to [`HASH_WAIT`] for a slot, then gets
/// [`HashError::Busy`].
#[derive(Clone)]
pub struct Hasher {
    slots: Arc<Semaphore>,
}

impl Hasher {
    pub fn new(max: usize) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(max)),
        }
    }

    pub async fn hash(&self, password: String) -> Result<String, HashError> {
        let slot = self.slot().await?;
        run(slot, move || hash_now(&password)).await?
    }

    /// Checks `password` against `stored`, or against a throwaway hash when
    /// there is no account, so that unknown emails take as long as wrong
    /// passwords.
    pub async fn verify(
        &self,
        password: String,
        stored: Option<String>,
    ) -> Result<bool, HashError> {
        let slot = self.slot().await?;
        run(slot, move || {
            let decoy = stored.is_none();
            let stored = stored.unwrap_or_else(|| decoy_hash().to_owned());
            let matches = PasswordHash::new(&stored)
                .map(|parsed| {
                    Argon2::default()
                        .verify_password(password.as_bytes(), &parsed)
                        .is_ok()
                })
                .unwrap_or(false);
            matches && !decoy
        })
        .await
    }

    async fn slot(&self) -> Result<OwnedSemaphorePermit, HashError> {
        match tokio::time::timeout(HASH_WAIT, self.slots.clone().acquire_owned()).await {
            Ok(Ok(slot)) => Ok(slot),
            _ => Err(HashError::Busy),
        }
    }
}

/// Runs `work` on a blocking thread; the slot is released when the work
/// ends, even if the request that started it has gone.
async fn run<T: Send + 'static>(
    slot: OwnedSemaphorePermit,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, HashError> {
    tokio::task::spawn_blocking(move || {
        let _slot = slot;
        work()
    })
    .await
    .map_err(|e| HashError::Failed(e.to_string()))
}

/// One hash, outside any bound: for the command line, which hashes once.
pub async fn hash(password: String) -> Result<String, HashError> {
    tokio::task::spawn_blocking(move || hash_now(&password))
        .await
        .map_err(|e| HashError::Failed(e.to_string()))?
}

fn hash_now(password: &str) -> Result<String, HashError> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| HashError::Failed(e.to_string()))
}

fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| {
        hash_now(&crate::crypto::random_token(16)).expect("hashing a random password")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let hasher = Hasher::new(2);
        let stored = hasher.hash("correct horse".into()).await.unwrap();
        assert!(stored.starts_with("$argon2id$"));
        let verify =
            |password: &str, stored: Option<String>| hasher.verify(password.into(), stored);
        assert!(verify("correct horse", Some(stored.clone())).await.unwrap());
        assert!(!verify("wrong horse", Some(stored)).await.unwrap());
        assert!(!verify("anything", None).await.unwrap());
    }

    #[tokio::test]
    async fn a_request_waits_for_a_slot_then_is_refused() {
        let hasher = Hasher::new(1);
        let held = hasher.slot().await.unwrap();
        let started = std::time::Instant::now();
        assert!(matches!(hasher.slot().await, Err(HashError::Busy)));
        assert!(started.elapsed() >= HASH_WAIT);
        drop(held);
        assert!(hasher.slot().await.is_ok());
    }
}
