//! A small map whose entries expire: what the per-request checks (clinic
//! state, account standing) remember between central queries.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Past this many entries, expired ones are swept on insert.
const SWEEP_ABOVE: usize = 10_000;

pub struct TtlCache<K, V> {
    ttl: Duration,
    entries: Mutex<HashMap<K, (V, Instant)>>,
}

impl<K: Eq + Hash, V: Copy> TtlCache<K, V> {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The value, if it was stored less than the lifetime ago.
    pub fn get(&self, key: &K) -> Option<V> {
        let mut entries = self.lock();
        match entries.get(key) {
            Some((value, at)) if at.elapsed() < self.ttl => Some(*value),
            Some(_) => {
                entries.remove(key);
                None
            }
            None => None,
        }
    }

    pub fn insert(&self, key: K, value: V) {
        let ttl = self.ttl;
        let mut entries = self.lock();
        if entries.len() >= SWEEP_ABOVE {
            entries.retain(|_, (_, at)| at.elapsed() < ttl);
        }
        entries.insert(key, (value, Instant::now()));
    }

    /// Drops one entry; the next lookup asks the source again.
    pub fn forget(&self, key: &K) {
        self.lock().remove(key);
    }

    /// Drops every entry.
    pub fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<K, (V, Instant)>> {
        self.entries.lock().expect("cache lock")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_can_be_forgotten() {
        let cache = TtlCache::new(Duration::from_millis(30));
        cache.insert(1, "a");
        cache.insert(2, "b");
        assert_eq!(cache.get(&1), Some("a"));
        cache.forget(&1);
        assert_eq!(cache.get(&1), None);
        cache.insert(3, "c");
        cache.clear();
        assert_eq!(cache.get(&3), None);
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(cache.get(&2), None);
    }
}
