//! The decision core of the connection registry: which clinic holds which
//! connection, what a checkout gets or waits for, what a release keeps.
//! Synchronous and free of I/O (the caller connects, closes and waits), so
//! its invariants are tested directly (see the tests below):
//! - the open connections it counts are the ones it was told of: never more
//!   than the budget's permits;
//! - its counters (open, per clinic, beyond-first, waiting) agree with the
//!   connections it holds;
//! - no checkout is told to wait while it could have an idle connection:
//!   its clinic's own, or (see [`Registry::find`]) another clinic's.
//!
//! Generic over the clinic handle `H` it keeps per clinic and the idle
//! connection `C`, so the tests drive it with plain values.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use crate::tenancy::naming::ClinicId;

/// How long a connection must have been idle before a clinic whose
/// connections are all busy may take it from its clinic.
pub const QUIET_AFTER: Duration = Duration::from_millis(250);

/// A clinic's entry: its id and the generation of the entry, so that a
/// checkout of an entry since removed (suspension, restore) never counts
/// against a newer entry of the same clinic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    pub id: ClinicId,
    pub generation: u64,
}

pub struct Registry<H, C> {
    clinics: HashMap<ClinicId, Slot<H, C>>,
    /// Idle connections, least recently used first: tick -> clinic.
    lru: BTreeMap<u64, ClinicId>,
    tick: u64,
    generations: u64,
    /// Checkouts of clinics with no connection, waiting for a permit.
    waiting: usize,
    open: usize,
    /// Connections beyond the first of their clinic, idle or busy.
    surplus: usize,
    closed: bool,
}

struct Slot<H, C> {
    handle: H,
    generation: u64,
    /// Most recently released last.
    idle: Vec<Idle<C>>,
    /// Open connections of this clinic, idle or busy (or being opened).
    open: usize,
    last_used: Instant,
}

struct Idle<C> {
    conn: C,
    tick: u64,
    since: Instant,
}

/// What a checkout gets.
#[derive(Debug, PartialEq, Eq)]
pub enum Found<C, P> {
    /// An idle connection of its clinic.
    Idle(C),
    /// A budget permit: open a connection with it (counted as open now).
    Permit(P),
    /// An idle connection of another clinic: close it and open one with
    /// its permit (counted as open now).
    Evicted(C),
    /// The budget is spent and the clinic's connections are busy: wait for
    /// one of them (or a permit).
    WaitOwn,
    /// The budget is spent, the clinic has no connection and none idle may
    /// be taken: wait for a permit, or for a release to evict. Counted
    /// as waiting until [`Registry::stop_waiting`].
    WaitBudget,
    /// The registry is closed (shutdown).
    Closed,
}

/// What becomes of a released connection.
#[derive(Debug, PartialEq, Eq)]
pub enum Released<C> {
    /// Kept idle; `wake_waiters` when checkouts wait for the budget.
    Kept { wake_waiters: bool },
    /// Not kept (retired clinic, old, closed registry): close it.
    Close(C),
}

impl<H: Clone, C> Default for Registry<H, C> {
    fn default() -> Self {
        Self {
            clinics: HashMap::new(),
            lru: BTreeMap::new(),
            tick: 0,
            generations: 0,
            waiting: 0,
            open: 0,
            surplus: 0,
            closed: false,
        }
    }
}

impl<H: Clone, C> Registry<H, C> {
    /// The clinic's handle, its entry created with `make(key)` if missing.
    pub fn entry(&mut self, id: ClinicId, now: Instant, make: impl FnOnce(Key) -> H) -> H {
        let generations = &mut self.generations;
        let slot = self.clinics.entry(id).or_insert_with(|| {
            *generations += 1;
            let generation = *generations;
            Slot {
                handle: make(Key { id, generation }),
                generation,
                idle: Vec::new(),
                open: 0,
                last_used: now,
            }
        });
        slot.last_used = now;
        slot.handle.clone()
    }

    /// Removes an entry with no connection (its opening failed), so that
    /// the next request opens it again.
    pub fn forget_empty(&mut self, key: Key) {
        if self.slot(key).is_some_and(|slot| slot.open == 0) {
            self.clinics.remove(&key.id);
        }
    }

    /// Looks for a connection of `key`'s clinic without waiting, in order:
    /// - an idle one of its own;
    /// - a budget permit (`try_permit`);
    /// - if the clinic has connections (all busy), the least recently used
    ///   idle connection of another clinic idle for [`QUIET_AFTER`], else
    ///   wait for its own;
    /// - if it has none, an idle connection of a clinic holding more than
    ///   one (least recently used first), or, when no clinic holds more
    ///   than one or `may_take_last`, the least recently used of all; else
    ///   wait for the budget.
    pub fn find<P>(
        &mut self,
        key: Key,
        may_take_last: bool,
        now: Instant,
        try_permit: impl FnOnce() -> Option<P>,
    ) -> Found<C, P> {
        if self.closed {
            return Found::Closed;
        }
        if let Some(conn) = self.pop_idle(key.id, now) {
            return Found::Idle(conn);
        }
        if let Some(permit) = try_permit() {
            self.count_opening(key);
            return Found::Permit(permit);
        }
        let has_connections = self.slot(key).is_some_and(|slot| slot.open > 0);
        let evicted = if has_connections {
            self.take_oldest_idle(QUIET_AFTER, now)
        } else {
            self.evict(may_take_last)
        };
        match evicted {
            Some(conn) => {
                self.count_opening(key);
                Found::Evicted(conn)
            }
            None if has_connections => Found::WaitOwn,
            None => {
                self.waiting += 1;
                Found::WaitBudget
            }
        }
    }

    /// Ends a [`Found::WaitBudget`] wait.
    pub fn stop_waiting(&mut self) {
        self.waiting -= 1;
    }

    /// Counts a connection of `key`'s clinic about to be opened with a
    /// permit that came while waiting. (Counted from the start, so that the
    /// clinic's other checkouts wait for it rather than open more.)
    pub fn count_opening(&mut self, key: Key) {
        self.open += 1;
        if let Some(slot) = self.slot(key) {
            slot.open += 1;
            let beyond_first = slot.open > 1;
            self.surplus += usize::from(beyond_first);
        }
    }

    /// Counts out a connection of `key`'s clinic that was closed while
    /// checked out, or could not be opened.
    pub fn lost(&mut self, key: Key) {
        self.open -= 1;
        if let Some(slot) = self.slot(key) {
            slot.open -= 1;
            let was_beyond_first = slot.open > 0;
            self.surplus -= usize::from(was_beyond_first);
        }
    }

    /// Takes a connection back: kept idle if `usable`, the registry open
    /// and the clinic's entry still the one it was checked out from.
    pub fn release(&mut self, key: Key, conn: C, usable: bool, now: Instant) -> Released<C> {
        let tick = self.tick + 1;
        let open = !self.closed;
        match self.slot(key) {
            Some(slot) if usable && open => {
                slot.last_used = now;
                slot.idle.push(Idle {
                    conn,
                    tick,
                    since: now,
                });
                self.tick = tick;
                self.lru.insert(tick, key.id);
                Released::Kept {
                    wake_waiters: self.waiting > 0,
                }
            }
            _ => {
                self.lost(key);
                Released::Close(conn)
            }
        }
    }

    /// Removes a clinic's entry (suspension, deletion, restore): its handle
    /// and idle connections, to close. Its busy connections are counted out
    /// as they are released.
    pub fn remove(&mut self, id: ClinicId) -> Option<(H, Vec<C>)> {
        let slot = self.clinics.remove(&id)?;
        Some(self.retire(slot))
    }

    /// Closes the registry (shutdown): every entry's handle and idle
    /// connections; later checkouts get [`Found::Closed`].
    pub fn close(&mut self) -> Vec<(H, Vec<C>)> {
        self.closed = true;
        let slots: Vec<Slot<H, C>> = self.clinics.drain().map(|(_, slot)| slot).collect();
        slots.into_iter().map(|slot| self.retire(slot)).collect()
    }

    /// Connections idle for `idle_timeout`, to close; forgets entries left
    /// with no connection as long, unless `in_use` (a request holds them).
    pub fn sweep(
        &mut self,
        idle_timeout: Duration,
        now: Instant,
        in_use: impl Fn(&H) -> bool,
    ) -> Vec<C> {
        let mut expired = Vec::new();
        while let Some(conn) = self.take_oldest_idle(idle_timeout, now) {
            expired.push(conn);
        }
        self.clinics.retain(|_, slot| {
            slot.open > 0
                || now.saturating_duration_since(slot.last_used) < idle_timeout
                || in_use(&slot.handle)
        });
        expired
    }

    /// Open connections, idle or busy.
    pub fn open(&self) -> usize {
        self.open
    }

    /// Clinics with an entry.
    pub fn clinics(&self) -> usize {
        self.clinics.len()
    }

    /// The ids of the clinics with an entry.
    pub fn clinic_ids(&self) -> Vec<ClinicId> {
        self.clinics.keys().copied().collect()
    }

    /// The slot of this very entry (not of a newer one of its clinic).
    fn slot(&mut self, key: Key) -> Option<&mut Slot<H, C>> {
        self.clinics
            .get_mut(&key.id)
            .filter(|slot| slot.generation == key.generation)
    }

    /// An idle connection of the clinic, if any.
    pub fn pop_idle(&mut self, id: ClinicId, now: Instant) -> Option<C> {
        let slot = self.clinics.get_mut(&id)?;
        let idle = slot.idle.pop()?;
        slot.last_used = now;
        self.lru.remove(&idle.tick);
        Some(idle.conn)
    }

    /// Removes one idle connection; the caller closes it.
    fn take_idle(&mut self, id: ClinicId, tick: u64) -> Option<C> {
        self.lru.remove(&tick);
        let slot = self.clinics.get_mut(&id)?;
        let position = slot.idle.iter().position(|idle| idle.tick == tick)?;
        let idle = slot.idle.remove(position);
        slot.open -= 1;
        let was_beyond_first = slot.open > 0;
        self.surplus -= usize::from(was_beyond_first);
        self.open -= 1;
        Some(idle.conn)
    }

    /// Removes the least recently used idle connection if it has been idle
    /// for at least `for_at_least`.
    fn take_oldest_idle(&mut self, for_at_least: Duration, now: Instant) -> Option<C> {
        let (&tick, &id) = self.lru.first_key_value()?;
        let old = self.clinics.get(&id).is_some_and(|slot| {
            slot.idle.iter().any(|idle| {
                idle.tick == tick && now.saturating_duration_since(idle.since) >= for_at_least
            })
        });
        if old {
            self.take_idle(id, tick)
        } else {
            None
        }
    }

    /// Removes the idle connection to close for a clinic that has none:
    /// the least recently used of a clinic holding others; else, when no
    /// clinic holds more than one or `may_take_last`, the least recently
    /// used of all.
    fn evict(&mut self, may_take_last: bool) -> Option<C> {
        let beyond_first = self
            .lru
            .iter()
            .find(|(_, id)| self.clinics.get(id).is_some_and(|slot| slot.open > 1));
        let (&tick, &id) = match beyond_first {
            Some(found) => found,
            None if self.surplus == 0 || may_take_last => self.lru.first_key_value()?,
            None => return None,
        };
        self.take_idle(id, tick)
    }

    /// A removed entry's handle and idle connections; its busy ones are no
    /// longer counted per clinic.
    fn retire(&mut self, slot: Slot<H, C>) -> (H, Vec<C>) {
        self.surplus -= slot.open.saturating_sub(1);
        self.open -= slot.idle.len();
        let idle = slot
            .idle
            .into_iter()
            .map(|idle| {
                self.lru.remove(&idle.tick);
                idle.conn
            })
            .collect();
        (slot.handle, idle)
    }
}

#[cfg(test)]
mod tests;
