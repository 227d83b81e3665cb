//! A short cache of each staff account's standing (live, active, role,
//! clinic), checked on every authenticated request so that an access token
//! stops working soon after its account changes, although the token itself
//! stays valid for up to 15 minutes.
//!
//! A token is refused (401) when its account is deleted or inactive, or
//! when the role or clinic it carries is no longer the account's: a demoted
//! user must refresh, and the new token carries the new role. A change made
//! on this instance clears the entry at once ([`AccountCache::forget`]);
//! other instances see it when their entry expires ([`ACCOUNT_TTL`]).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sqlx::PgPool;
use uuid::Uuid;

use super::jwt::Claims;
use crate::central::users::{self, Standing};

pub const ACCOUNT_TTL: Duration = Duration::from_secs(2);

/// Past this many entries, expired ones are swept on insert.
const SWEEP_ABOVE: usize = 10_000;

#[derive(Default)]
pub struct AccountCache {
    /// `None`: no live account with this id.
    entries: Mutex<HashMap<Uuid, (Option<Standing>, Instant)>>,
}

impl AccountCache {
    /// Whether the token's claims still describe a live, active account.
    pub async fn admits(&self, central: &PgPool, claims: &Claims) -> Result<bool, sqlx::Error> {
        let standing = match self.cached(claims.user_id) {
            Some(standing) => standing,
            None => {
                let standing = users::standing(central, claims.user_id).await?;
                self.insert(claims.user_id, standing);
                standing
            }
        };
        Ok(standing.is_some_and(|s| {
            s.is_active && s.role == claims.role && s.company_id == claims.clinic_id
        }))
    }

    /// Drops what is known of one account; the next request asks central.
    pub fn forget(&self, user_id: Uuid) {
        self.lock().remove(&user_id);
    }

    fn cached(&self, user_id: Uuid) -> Option<Option<Standing>> {
        let mut entries = self.lock();
        match entries.get(&user_id) {
            Some((standing, at)) if at.elapsed() < ACCOUNT_TTL => Some(*standing),
            Some(_) => {
                entries.remove(&user_id);
                None
            }
            None => None,
        }
    }

    fn insert(&self, user_id: Uuid, standing: Option<Standing>) {
        let mut entries = self.lock();
        if entries.len() >= SWEEP_ABOVE {
            entries.retain(|_, (_, at)| at.elapsed() < ACCOUNT_TTL);
        }
        entries.insert(user_id, (standing, Instant::now()));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, (Option<Standing>, Instant)>> {
        self.entries.lock().expect("account cache lock")
    }
}
