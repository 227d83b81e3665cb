//! What every handler can reach: the central database, the token keys, the
//! clinic pool registry, the clinic state and account caches, the
//! provisioner, the metrics, the audit sealer, the password hasher and the
//! request and registration settings.

use std::sync::Arc;
use std::time::Duration;

use super::metrics::Metrics;
use super::proxies::TrustedProxies;
use crate::auth::accounts::AccountCache;
use crate::auth::jwt::TokenKeys;
use crate::auth::password::Hasher;
use crate::central::login_failures::LoginLimits;
use crate::central::Databases;
use crate::coherence::Coherence;
use crate::config::RegistrationSettings;
use crate::crypto::BearerToken;
use crate::master_keys::MasterKeys;
use crate::tenancy::audit_sealer::AuditSealer;
use crate::tenancy::pools::ClinicPools;
use crate::tenancy::provisioning::Provisioner;
use crate::tenancy::read_trail::ReadTrail;
use crate::tenancy::sizes::SizeSamples;
use crate::tenancy::state::StateCache;

#[derive(Clone)]
pub struct AppState {
    pub databases: Databases,
    pub keys: TokenKeys,
    /// The master keys (erasure ledger keys are sealed with them).
    pub master_keys: Arc<MasterKeys>,
    pub pools: Arc<ClinicPools>,
    pub states: Arc<StateCache>,
    pub accounts: Arc<AccountCache>,
    /// The listener that clears `states`, `accounts` and `pools` when
    /// another instance changes a clinic or an account.
    pub coherence: Arc<Coherence>,
    pub provisioner: Provisioner,
    pub metrics: Arc<Metrics>,
    /// Each clinic's size, sampled by `serve` (see `tenancy::sizes`).
    pub sizes: Arc<SizeSamples>,
    pub sealer: Arc<AuditSealer>,
    /// Read events waiting for their group commit.
    pub read_trail: Arc<ReadTrail>,
    /// `REFRESH_FAMILY_MAX_DAYS`: the absolute lifetime of a login's refresh tokens.
    pub refresh_family_max_days: i32,
    /// `METRICS_TOKEN`: what `/metrics` requires, when set.
    pub metrics_token: Option<BearerToken>,
    /// Whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Arc<TrustedProxies>,
    /// A request still running after this answers 503.
    pub request_timeout: Duration,
    /// The bound on password hashes in flight.
    pub hasher: Hasher,
    /// `REGISTRATION` and the registration rate limits.
    pub registration: RegistrationSettings,
    /// The login throttling limits (`LOGIN_ATTEMPTS_PER_*`, `LOGIN_WINDOW_SECS`).
    pub login_limits: LoginLimits,
}
