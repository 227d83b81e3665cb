//! The clinic pool registry: one small pool per clinic, opened on first use
//! from the clinic's central record (its password unsealed in memory only,
//! once per pool opening), then cached. Connections close when idle. No lock
//! is held while connecting: pools are lazy and connect on checkout.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

use crate::central::companies;
use crate::config::PoolSettings;
use crate::crypto::Keyring;
use crate::tenancy::naming::ClinicId;

/// How long a request waits for a clinic connection before answering 503.
pub const CHECKOUT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("clinic {0} has no provisioned database")]
    NotProvisioned(ClinicId),
    #[error("the stored password of clinic {0} cannot be unsealed with this MASTER_KEY")]
    Unsealable(ClinicId),
    #[error("central database")]
    Central(#[from] sqlx::Error),
}

pub struct ClinicPools {
    central: PgPool,
    master_key: Keyring,
    /// Connection settings shared with the admin connection (TLS mode,
    /// timeouts); host, port, database and credentials are the clinic's.
    base_options: PgConnectOptions,
    settings: PoolSettings,
    pools: Mutex<HashMap<ClinicId, PgPool>>,
}

impl ClinicPools {
    pub fn new(
        central: PgPool,
        master_key: Keyring,
        base_options: PgConnectOptions,
        settings: PoolSettings,
    ) -> Self {
        Self {
            central,
            master_key,
            base_options,
            settings,
            pools: Mutex::new(HashMap::new()),
        }
    }

    /// The clinic's pool, opened from its central record on first use.
    pub async fn pool(&self, id: ClinicId) -> Result<PgPool, PoolError> {
        if let Some(pool) = self.pools.lock().expect("pool registry lock").get(&id) {
            return Ok(pool.clone());
        }
        let placement = companies::placement(&self.central, id)
            .await?
            .ok_or(PoolError::NotProvisioned(id))?;
        let password = self
            .master_key
            .open(&placement.db_password_sealed, id.0.as_bytes())
            .map_err(|_| PoolError::Unsealable(id))?;
        let password = String::from_utf8(password).map_err(|_| PoolError::Unsealable(id))?;
        let options = self
            .base_options
            .clone()
            .host(&placement.db_host)
            .port(u16::try_from(placement.db_port).unwrap_or(5432))
            .database(&placement.db_name)
            .username(&placement.db_user)
            .password(&password)
            .application_name("medicalpro-clinic");
        let pool = PgPoolOptions::new()
            .max_connections(self.settings.per_clinic_max)
            .min_connections(0)
            .idle_timeout(self.settings.idle_timeout)
            .acquire_timeout(CHECKOUT_TIMEOUT)
            .connect_lazy_with(options);
        let mut pools = self.pools.lock().expect("pool registry lock");
        Ok(pools.entry(id).or_insert(pool).clone())
    }

    /// Closes and forgets a clinic's pool (suspension, deletion, restore).
    pub async fn close(&self, id: ClinicId) {
        let pool = self.pools.lock().expect("pool registry lock").remove(&id);
        if let Some(pool) = pool {
            pool.close().await;
        }
    }

    pub async fn close_all(&self) {
        let pools: Vec<PgPool> = self
            .pools
            .lock()
            .expect("pool registry lock")
            .drain()
            .map(|(_, pool)| pool)
            .collect();
        for pool in pools {
            pool.close().await;
        }
    }

    pub fn open_pools(&self) -> usize {
        self.pools.lock().expect("pool registry lock").len()
    }
}
