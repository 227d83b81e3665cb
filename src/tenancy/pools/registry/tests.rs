//! The registry's decisions, one by one, and its invariants under random
//! sequences of checkouts, releases, losses, removals and sweeps (a small
//! seeded generator: every failure names the seed that reproduces it).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::{Found, Key, Registry, Released, QUIET_AFTER};
use crate::tenancy::naming::ClinicId;

/// Connections are numbers; a permit is a unit.
type Reg = Registry<Key, u32>;

fn clinic(n: u128) -> ClinicId {
    ClinicId(Uuid::from_u128(n + 1))
}

fn key(registry: &mut Reg, n: u128, now: Instant) -> Key {
    registry.entry(clinic(n), now, |key| key)
}

fn permit(budget: &mut usize) -> Option<()> {
    (*budget > 0).then(|| *budget -= 1)
}

#[test]
fn a_checkout_takes_its_own_idle_connection_before_a_permit() {
    let now = Instant::now();
    let mut registry = Reg::default();
    let a = key(&mut registry, 0, now);
    let mut budget = 2;
    assert_eq!(
        registry.find(a, false, now, || permit(&mut budget)),
        Found::Permit(())
    );
    assert_eq!(
        registry.release(a, 7, true, now),
        Released::Kept {
            wake_waiters: false
        }
    );
    assert_eq!(
        registry.find(a, false, now, || permit(&mut budget)),
        Found::Idle(7)
    );
    assert_eq!((budget, registry.open()), (1, 1));
}

#[test]
fn a_busy_clinic_waits_for_a_connection_just_released_but_takes_a_quiet_one() {
    let start = Instant::now();
    let mut registry = Reg::default();
    let (busy, quiet) = (key(&mut registry, 0, start), key(&mut registry, 1, start));
    let mut budget = 2;
    assert_eq!(
        registry.find(busy, false, start, || permit(&mut budget)),
        Found::Permit(())
    );
    assert_eq!(
        registry.find(quiet, false, start, || permit(&mut budget)),
        Found::Permit(())
    );
    registry.release(quiet, 1, true, start);
    // Idle for less than QUIET_AFTER: its clinic will reuse it.
    let soon = start + QUIET_AFTER / 2;
    assert_eq!(
        registry.find(busy, false, soon, || permit(&mut budget)),
        Found::WaitOwn
    );
    let later = start + QUIET_AFTER;
    assert_eq!(
        registry.find(busy, false, later, || permit(&mut budget)),
        Found::Evicted(1)
    );
    assert_eq!(
        registry.open(),
        2,
        "the evicted one's place is the new one's"
    );
}

#[test]
fn a_clinic_with_none_takes_a_second_connection_first_and_a_last_one_only_after_the_grace() {
    let now = Instant::now();
    let mut registry = Reg::default();
    let (two, one, newcomer) = (
        key(&mut registry, 0, now),
        key(&mut registry, 1, now),
        key(&mut registry, 2, now),
    );
    let mut budget = 3;
    for owner in [two, two, one] {
        assert_eq!(
            registry.find(owner, false, now, || permit(&mut budget)),
            Found::Permit(())
        );
    }
    // One's only connection idle, two's both busy: not before the grace.
    registry.release(one, 10, true, now);
    assert_eq!(
        registry.find(newcomer, false, now, || permit(&mut budget)),
        Found::WaitBudget
    );
    registry.stop_waiting();
    assert_eq!(
        registry.find(newcomer, true, now, || permit(&mut budget)),
        Found::Evicted(10)
    );
    // Two's second connection, once idle, goes before anyone's last.
    registry.release(two, 20, true, now);
    registry.release(newcomer, 30, true, now);
    let fourth = key(&mut registry, 3, now);
    assert_eq!(
        registry.find(fourth, false, now, || permit(&mut budget)),
        Found::Evicted(20)
    );
}

#[test]
fn a_release_after_removal_closes_and_a_newer_entry_is_not_charged() {
    let now = Instant::now();
    let mut registry = Reg::default();
    let old = key(&mut registry, 0, now);
    let mut budget = 1;
    assert_eq!(
        registry.find(old, false, now, || permit(&mut budget)),
        Found::Permit(())
    );
    let (_, idle) = registry.remove(old.id).expect("entry");
    assert!(idle.is_empty());
    let newer = key(&mut registry, 0, now);
    assert_ne!(old.generation, newer.generation);
    assert_eq!(registry.release(old, 5, true, now), Released::Close(5));
    assert_eq!(registry.open(), 0);
    assert_eq!(
        registry.find(newer, false, now, || permit(&mut budget)),
        Found::WaitBudget
    );
}

#[test]
fn a_closed_registry_hands_out_nothing_and_keeps_nothing() {
    let now = Instant::now();
    let mut registry = Reg::default();
    let a = key(&mut registry, 0, now);
    let mut budget = 1;
    assert_eq!(
        registry.find(a, false, now, || permit(&mut budget)),
        Found::Permit(())
    );
    registry.close();
    assert_eq!(registry.release(a, 1, true, now), Released::Close(1));
    assert_eq!(
        registry.find(a, false, now, || permit(&mut budget)),
        Found::Closed
    );
}

/// xorshift64*: enough randomness for operation sequences, no crate.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n
    }
}

/// What the test knows about the world the registry decides for.
struct World {
    budget: usize,
    free: usize,
    /// Checked-out connections: (entry they came from, connection).
    busy: Vec<(Key, u32)>,
    next: u32,
    now: Instant,
}

impl World {
    /// Invariants that must hold after every operation.
    fn check(&self, registry: &Reg, seed: u64, step: usize) {
        let at = format!("seed {seed}, step {step}");
        // The budget is never exceeded: every open connection holds a permit.
        assert_eq!(registry.open() + self.free, self.budget, "{at}: permits");
        assert!(registry.open() <= self.budget, "{at}: budget");
        let idle: usize = registry.clinics.values().map(|slot| slot.idle.len()).sum();
        assert_eq!(registry.lru.len(), idle, "{at}: lru");
        let live: HashMap<ClinicId, u64> = registry
            .clinics
            .iter()
            .map(|(id, slot)| (*id, slot.generation))
            .collect();
        let mut surplus = 0;
        for (id, slot) in &registry.clinics {
            let busy = self
                .busy
                .iter()
                .filter(|(key, _)| key.id == *id && key.generation == slot.generation)
                .count();
            assert_eq!(slot.open, busy + slot.idle.len(), "{at}: clinic count");
            surplus += slot.open.saturating_sub(1);
        }
        assert_eq!(registry.surplus, surplus, "{at}: surplus");
        // Busy connections of removed entries are still open until released.
        let orphaned = self
            .busy
            .iter()
            .filter(|(key, _)| live.get(&key.id) != Some(&key.generation))
            .count();
        let counted: usize = registry.clinics.values().map(|slot| slot.open).sum();
        assert_eq!(registry.open(), counted + orphaned, "{at}: total");
        assert_eq!(registry.waiting, 0, "{at}: waiting");
    }

    fn checkout(&mut self, registry: &mut Reg, key: Key, may_take_last: bool, at: &str) {
        let per_clinic_busy = self.busy.iter().filter(|(k, _)| *k == key).count();
        if per_clinic_busy >= 3 {
            return; // the clinic's checkout semaphore would make it wait
        }
        let free = &mut self.free;
        let found = registry.find(key, may_take_last, self.now, || permit(free));
        match found {
            Found::Idle(conn) => self.busy.push((key, conn)),
            Found::Permit(()) | Found::Evicted(_) => {
                self.next += 1;
                self.busy.push((key, self.next));
            }
            Found::WaitOwn => {
                // Waiting is right only if nothing was there to take.
                assert!(self.free == 0, "{at}: waits with permits free");
                assert!(
                    registry.take_oldest_idle(QUIET_AFTER, self.now).is_none(),
                    "{at}: waits while a quiet connection is idle"
                );
            }
            Found::WaitBudget => {
                registry.stop_waiting();
                assert!(self.free == 0, "{at}: waits with permits free");
                assert!(
                    registry.lru.is_empty() || (!may_take_last && registry.surplus > 0),
                    "{at}: waits while an idle connection may be taken"
                );
            }
            Found::Closed => unreachable!("{at}: never closed here"),
        }
    }
}

#[test]
fn random_sequences_keep_every_invariant() {
    for seed in 1..=300u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let budget = 1 + rng.below(8);
        let clinics = 1 + rng.below(12) as u128;
        let mut world = World {
            budget,
            free: budget,
            busy: Vec::new(),
            next: 0,
            now: Instant::now(),
        };
        let mut registry = Reg::default();
        for step in 0..400 {
            let at = format!("seed {seed}, step {step}");
            world.now += Duration::from_millis(rng.below(120) as u64);
            match rng.below(10) {
                0..=3 => {
                    let n = rng.below(clinics as usize) as u128;
                    let key = key(&mut registry, n, world.now);
                    let may_take_last = rng.below(2) == 0;
                    world.checkout(&mut registry, key, may_take_last, &at);
                }
                4..=6 if !world.busy.is_empty() => {
                    let (key, conn) = world.busy.swap_remove(rng.below(world.busy.len()));
                    let usable = rng.below(8) != 0;
                    if let Released::Close(_) = registry.release(key, conn, usable, world.now) {
                        world.free += 1;
                    }
                }
                7 if !world.busy.is_empty() => {
                    let (key, _) = world.busy.swap_remove(rng.below(world.busy.len()));
                    registry.lost(key);
                    world.free += 1;
                }
                8 => {
                    let n = rng.below(clinics as usize) as u128;
                    if let Some((_, idle)) = registry.remove(clinic(n)) {
                        world.free += idle.len();
                    }
                }
                _ => {
                    let expired = registry.sweep(Duration::from_secs(2), world.now, |_| false);
                    world.free += expired.len();
                }
            }
            world.check(&registry, seed, step);
        }
    }
}
