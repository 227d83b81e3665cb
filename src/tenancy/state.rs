//! A short cache of whether each clinic is active, so the per-request check
//! costs no central query most of the time. Every change of a clinic's
//! state is announced on central ([`crate::central::notify`]) and every
//! instance's listener clears the entry at once ([`crate::coherence`]);
//! should notices be lost, an entry still expires after [`STATE_TTL`].
//!
//! Only `Active` is kept: a clinic refused (suspended, deleted, not yet
//! provisioned) is asked of central on every request, so that an
//! activation is served at once by every instance, without waiting for its
//! notice to be heard (a suspended clinic's requests are few, and each
//! needs a token signed for it).

use std::time::Duration;

use moka::sync::Cache;

use sqlx::PgPool;

use crate::central::companies::{self, ClinicState};
use crate::tenancy::naming::ClinicId;

pub const STATE_TTL: Duration = Duration::from_secs(2);

pub struct StateCache(Cache<ClinicId, ClinicState>);

impl Default for StateCache {
    fn default() -> Self {
        Self(Cache::builder().time_to_live(STATE_TTL).build())
    }
}

impl StateCache {
    pub async fn state(&self, central: &PgPool, id: ClinicId) -> Result<ClinicState, sqlx::Error> {
        if let Some(state) = self.0.get(&id) {
            return Ok(state);
        }
        let state = companies::state(central, id).await?;
        if state == ClinicState::Active {
            self.0.insert(id, state);
        }
        Ok(state)
    }

    /// Drops what is known of one clinic; the next request asks central.
    pub fn forget(&self, id: ClinicId) {
        self.0.invalidate(&id);
    }

    /// Drops everything known (change notices may have been missed).
    pub fn clear(&self) {
        self.0.invalidate_all();
    }
}
