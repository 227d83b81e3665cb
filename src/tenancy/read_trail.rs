//! Group commit of read events. A read changes nothing, so its event is the
//! only thing it writes; committed one by one, every read waits for its own
//! flush of the write-ahead log, and a clinic's reads are bounded by its
//! connections times the disk's flush rate. Here the events of a clinic's
//! concurrent reads are written together: one statement, one commit, one
//! flush for all of them.
//!
//! The first read of a clinic with no write under way starts a writer task,
//! which writes the events queued so far (its own at first), then the ones
//! that arrived meanwhile, until none is left. Each request answers only
//! once the commit that holds its own event has succeeded, so no data
//! leaves the server before its read is in the trail; if the write fails,
//! every request of the batch fails. The events are left pending and
//! chained by the sealer, off the request path.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use super::audit_sealer::AuditSealer;
use super::naming::ClinicId;
use super::pools::{ClinicPool, PoolError};
use crate::clinic::audit::{self, Actor, Entry};

/// Events written by one statement at most; more wait for the next.
const MAX_BATCH: usize = 1000;

/// Why a batch of read events could not be written.
#[derive(Debug, Clone, Copy, thiserror::Error)]
pub enum NotRecorded {
    /// No connection, the connection was lost, or the statement timed out:
    /// worth retrying.
    #[error("the clinic database is unavailable")]
    Unavailable,
    /// The database refused the events.
    #[error("the clinic database refused the read events")]
    Refused,
}

/// Read events waiting to be written, per clinic with a writer running.
#[derive(Default)]
pub struct ReadTrail {
    queues: Mutex<HashMap<ClinicId, Vec<Waiting>>>,
}

struct Waiting {
    event: (Actor, Entry),
    written: oneshot::Sender<Result<(), NotRecorded>>,
}

impl ReadTrail {
    /// Records a read of `pool`'s clinic; returns once the event is
    /// committed (pending, to be sealed: the clinic is marked for it).
    pub async fn record(
        self: &Arc<Self>,
        pool: &ClinicPool,
        sealer: &Arc<AuditSealer>,
        actor: Actor,
        entry: Entry,
    ) -> Result<(), NotRecorded> {
        let (written, outcome) = oneshot::channel();
        let waiting = Waiting {
            event: (actor, entry),
            written,
        };
        let start_writer = {
            let mut queues = self.lock();
            match queues.get_mut(&pool.clinic_id()) {
                Some(queue) => {
                    queue.push(waiting);
                    false
                }
                None => {
                    queues.insert(pool.clinic_id(), vec![waiting]);
                    true
                }
            }
        };
        if start_writer {
            tokio::spawn(self.clone().write_until_empty(pool.clone(), sealer.clone()));
        }
        // A writer that vanished (the runtime stopping) wrote nothing.
        outcome.await.unwrap_or(Err(NotRecorded::Unavailable))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ClinicId, Vec<Waiting>>> {
        self.queues.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes the clinic's queued events, a batch per commit, until none is
    /// left; then the clinic's queue goes, so the next read starts a writer.
    async fn write_until_empty(self: Arc<Self>, pool: ClinicPool, sealer: Arc<AuditSealer>) {
        let id = pool.clinic_id();
        loop {
            let batch = {
                let mut queues = self.lock();
                match queues.get_mut(&id) {
                    Some(queue) if queue.len() > MAX_BATCH => {
                        queue.drain(..MAX_BATCH).collect::<Vec<_>>()
                    }
                    Some(queue) if !queue.is_empty() => std::mem::take(queue),
                    _ => {
                        queues.remove(&id);
                        return;
                    }
                }
            };
            let (events, waiting): (Vec<_>, Vec<_>) = batch
                .into_iter()
                .map(|waiting| (waiting.event, waiting.written))
                .unzip();
            let outcome = write(&pool, &events).await;
            if outcome.is_ok() {
                sealer.mark(id);
            }
            for written in waiting {
                let _ = written.send(outcome);
            }
        }
    }
}

/// One statement, its own transaction. On a reused connection the server
/// had closed, it runs again on the next one: an event may then be
/// recorded twice, never lost.
async fn write(pool: &ClinicPool, events: &[(Actor, Entry)]) -> Result<(), NotRecorded> {
    let batch = audit::batch(events);
    let written = pool
        .run_alone(|conn| Box::pin(audit::record_all(conn, batch.clone())))
        .await;
    match written {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error))
            if super::pools::connection_lost(&error)
                || super::pools::statement_cancelled(&error) =>
        {
            Err(NotRecorded::Unavailable)
        }
        Ok(Err(error)) => {
            tracing::error!(clinic.id = %pool.clinic_id(), %error, "recording read events failed");
            Err(NotRecorded::Refused)
        }
        Err(PoolError::Unavailable(..)) | Err(PoolError::NotProvisioned(_)) => {
            Err(NotRecorded::Unavailable)
        }
        Err(error) => {
            tracing::error!(clinic.id = %pool.clinic_id(), %error, "recording read events failed");
            Err(NotRecorded::Unavailable)
        }
    }
}
