//! A short cache of each staff account's standing (live, active, role,
//! clinic), checked on every authenticated request so that an access token
//! stops working soon after its account changes, although the token itself
//! stays valid for up to 15 minutes.
//!
//! A token is refused (401) when its account is deleted or inactive, or
//! when the role or clinic it carries is no longer the account's: a demoted
//! user must refresh, and the new token carries the new role. Every change
//! of an account is announced on central ([`crate::central::notify`]) and
//! every instance's listener clears the entry at once
//! ([`crate::coherence`]); should notices be lost, an entry still expires
//! after [`ACCOUNT_TTL`].

use std::time::Duration;

use moka::sync::Cache;

use sqlx::PgPool;
use uuid::Uuid;

use super::jwt::Claims;
use crate::central::users::{self, Standing};

pub const ACCOUNT_TTL: Duration = Duration::from_secs(2);

/// `None` for an id with no live account.
pub struct AccountCache(Cache<Uuid, Option<Standing>>);

impl Default for AccountCache {
    fn default() -> Self {
        Self(Cache::builder().time_to_live(ACCOUNT_TTL).build())
    }
}

impl AccountCache {
    /// Whether the token's claims still describe a live, active account.
    pub async fn admits(&self, central: &PgPool, claims: &Claims) -> Result<bool, sqlx::Error> {
        let standing = match self.0.get(&claims.user_id) {
            Some(standing) => standing,
            None => {
                let standing = users::standing(central, claims.user_id).await?;
                self.0.insert(claims.user_id, standing);
                standing
            }
        };
        Ok(standing.is_some_and(|s| {
            s.is_active && s.role == claims.role && s.company_id == claims.clinic_id
        }))
    }

    /// Drops what is known of one account; the next request asks central.
    pub fn forget(&self, user_id: Uuid) {
        self.0.invalidate(&user_id);
    }

    /// Drops everything known (change notices may have been missed).
    pub fn clear(&self) {
        self.0.invalidate_all();
    }
}
