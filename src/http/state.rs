//! What every handler can reach: the central database, the token keys, the
//! clinic pool registry, the clinic state and account caches, the
//! provisioner, the metrics, the audit sealer and the password hasher.

use std::sync::Arc;

use super::metrics::Metrics;
use crate::auth::accounts::AccountCache;
use crate::auth::jwt::TokenKeys;
use crate::auth::password::Hasher;
use crate::central::Databases;
use crate::tenancy::audit_sealer::AuditSealer;
use crate::tenancy::pools::ClinicPools;
use crate::tenancy::provisioning::Provisioner;
use crate::tenancy::read_trail::ReadTrail;
use crate::tenancy::state::StateCache;

#[derive(Clone)]
pub struct AppState {
    pub databases: Databases,
    pub keys: TokenKeys,
    pub pools: Arc<ClinicPools>,
    pub states: Arc<StateCache>,
    pub accounts: Arc<AccountCache>,
    pub provisioner: Provisioner,
    pub metrics: Arc<Metrics>,
    pub sealer: Arc<AuditSealer>,
    /// Read events waiting for their group commit.
    pub read_trail: Arc<ReadTrail>,
    /// The bound on password hashes in flight.
    pub hasher: Hasher,
}
