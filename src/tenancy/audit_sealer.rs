//! Seals clinics' pending audit events shortly after the requests that
//! wrote them have committed (see `clinic/audit_schema.sql`: an event is
//! left pending when another transaction was extending the chain). A
//! request that left one marks its clinic; one background task gathers
//! marks for a moment, then seals each marked clinic through its pool, a
//! few at a time. A seal that fails leaves the events pending, durable and unaltered:
//! the clinic's next audited request or `medicalpro audit verify` seals them.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;

use super::naming::ClinicId;
use super::pools::ClinicPools;
use crate::clinic::audit;

/// How long marks gather before a pass: one seal then chains the events of
/// every request in between, in one commit.
const GATHER: Duration = Duration::from_millis(20);

/// Clinics sealed at once, so that sealing never takes much of the budget.
const CONCURRENT_SEALS: usize = 4;

#[derive(Default)]
pub struct AuditSealer {
    marked: Mutex<HashSet<ClinicId>>,
    wake: Notify,
}

impl AuditSealer {
    /// Asks for `id`'s pending events to be sealed; call after the commit.
    pub fn mark(&self, id: ClinicId) {
        let newly = self
            .marked
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(id);
        if newly {
            self.wake.notify_one();
        }
    }

    /// Seals marked clinics as marks come, until the runtime stops.
    pub async fn run(self: Arc<Self>, pools: Arc<ClinicPools>) {
        loop {
            self.wake.notified().await;
            tokio::time::sleep(GATHER).await;
            self.seal_marked(&pools).await;
        }
    }

    /// Seals every clinic marked so far (also the last pass at shutdown).
    pub async fn seal_marked(&self, pools: &Arc<ClinicPools>) {
        let marked = std::mem::take(
            &mut *self
                .marked
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
        let slots = Arc::new(Semaphore::new(CONCURRENT_SEALS));
        let mut seals = JoinSet::new();
        for id in marked {
            let pools = pools.clone();
            let slots = slots.clone();
            seals.spawn(async move {
                let _slot = slots.acquire_owned().await;
                if let Err(error) = seal_clinic(&pools, id).await {
                    tracing::warn!(clinic.id = %id, %error, "sealing audit events failed; they stay pending");
                }
            });
        }
        while seals.join_next().await.is_some() {}
    }
}

async fn seal_clinic(pools: &ClinicPools, id: ClinicId) -> anyhow::Result<()> {
    let mut tx = pools.pool(id).await?.begin().await?;
    audit::seal(&mut tx).await?;
    tx.commit().await?;
    Ok(())
}
