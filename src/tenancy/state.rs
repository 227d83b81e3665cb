//! A short cache of whether each clinic is active, so the per-request check
//! costs no central query most of the time. Suspending a clinic on this
//! instance clears its entry at once; other instances see the change when
//! their entry expires ([`STATE_TTL`]).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sqlx::PgPool;

use crate::central::companies::{self, ClinicState};
use crate::tenancy::naming::ClinicId;

pub const STATE_TTL: Duration = Duration::from_secs(2);

#[derive(Default)]
pub struct StateCache {
    entries: Mutex<HashMap<ClinicId, (ClinicState, Instant)>>,
}

impl StateCache {
    pub async fn state(&self, central: &PgPool, id: ClinicId) -> Result<ClinicState, sqlx::Error> {
        if let Some(state) = self.cached(id) {
            return Ok(state);
        }
        let state = companies::state(central, id).await?;
        self.entries
            .lock()
            .expect("state cache lock")
            .insert(id, (state, Instant::now()));
        Ok(state)
    }

    /// Drops what is known of one clinic; the next request asks central.
    pub fn forget(&self, id: ClinicId) {
        self.entries.lock().expect("state cache lock").remove(&id);
    }

    fn cached(&self, id: ClinicId) -> Option<ClinicState> {
        let mut entries = self.entries.lock().expect("state cache lock");
        match entries.get(&id) {
            Some((state, at)) if at.elapsed() < STATE_TTL => Some(*state),
            Some(_) => {
                entries.remove(&id);
                None
            }
            None => None,
        }
    }
}
