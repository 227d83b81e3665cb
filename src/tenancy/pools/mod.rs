//! Clinic connections under one budget. Each clinic database is reached
//! with its own role, so connections cannot be shared between clinics; with
//! thousands of clinics and one server's `max_connections`, this module
//! decides which clinic holds which connection. The decisions are made by
//! [`registry`], a synchronous core tested on its own; this module does
//! the I/O around them (connecting, closing, waiting, transactions), and
//! [`exit_watch`] waits for closed connections' backends to exit.
//!
//! - A clinic is *opened* on first use: its placement is read from central
//!   and its password unsealed once, kept in memory as connect options. A
//!   clinic with no connection left is forgotten after the idle timeout.
//! - The budget (`MAX_CLINIC_CONNECTIONS`) is a semaphore whose permits
//!   count OPEN connections: a permit is taken before connecting and given
//!   back only once the closed connection's backend has exited (PostgreSQL
//!   counts it until then), so the server never sees more clinic
//!   connections from this instance than the budget.
//! - A clinic holds at most `CLINIC_POOL_MAX` connections: a per-clinic
//!   semaphore counts checkouts, and a new connection is opened only when the
//!   clinic has no idle one, so its open connections never exceed it either.
//!   A connection counts as the clinic's from the moment it may be opened.
//! - Idle connections are kept per clinic and in one least-recently-used
//!   order. A checkout takes an idle connection of its clinic, else opens one
//!   if the budget allows. When the budget is spent:
//!   - a clinic that has connections (all busy) takes the least recently
//!     used idle connection of another clinic if that one has been idle for
//!     [`registry::QUIET_AFTER`] (its clinic is quiet: a burst across many clinics
//!     leaves the busy clinic's share to it within a second); else it
//!     waits for one of its own, or a permit, whichever comes first. A
//!     connection idle for less is about to be reused by its own clinic:
//!     taking it would only trade one reconnection for another;
//!   - a clinic with none closes an idle connection of another clinic and
//!     takes its permit: the least recently used of a clinic holding more
//!     than one. A clinic's last connection is taken (least recently used
//!     first) only when no clinic holds more than one, or after a short
//!     grace. Nothing being idle, it waits for a permit, or for a
//!     connection to be released, to evict that one. Each waiting clinic
//!     thus closes one connection, and busy clinics shrink to one
//!     connection under pressure before any clinic in use loses its last.
//!     (Closing every connection released while anyone waited fed itself:
//!     each close left a clinic with none, whose next request waited in
//!     turn, and a working set that fits the budget reconnected on nearly
//!     every request.)
//! - Every wait ends at `CLINIC_CHECKOUT_TIMEOUT_MS`: the request then gets
//!   [`PoolError::Unavailable`] (503 `clinic_unavailable` with `Retry-After`).
//! - One short lock guards the registry; it is never held across an await,
//!   so opening or connecting one clinic never delays another.
//! - No connection goes back with a transaction open: a transaction dropped
//!   without commit (an error after `BEGIN`, an abandoned request) is rolled
//!   back before its connection is released, its clinic checkout held until
//!   then; one that cannot be rolled back is closed. The registry refuses a
//!   connection still in a transaction (closing it), counted in `/metrics`:
//!   its locks would stall the next request on the same rows.
//! - A shared-tier clinic's connections are its pod's: the registry's entry
//!   is the pod (keyed by the pod's id), shared by every clinic placed in it
//!   and holding up to `POD_POOL_MAX` connections, logged in as the pod's
//!   role, which may read nothing by itself. Each transaction of a clinic
//!   starts with `SET LOCAL ROLE` to the clinic's serving role and `SET
//!   LOCAL search_path` to its schema, in the same round trip as `BEGIN`;
//!   both end with the transaction, so a connection goes back to the pod
//!   as nobody in particular.
//! - A connection is not pinged on checkout (one round trip saved per
//!   request): if `BEGIN` fails on a reused connection, it is closed and a
//!   fresh one opened. A background sweep closes connections idle longer than
//!   `CLINIC_POOL_IDLE_SECS`.

mod exit_watch;
mod registry;

use std::collections::HashMap;
use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgTransactionManager};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool, TransactionManager};
use tokio::sync::{Notify, OnceCell, OwnedSemaphorePermit, Semaphore};
use tokio::time::timeout_at;

use crate::central::companies::{self, Placement};
use crate::config::PoolSettings;
use crate::master_keys::MasterKeys;
use crate::tenancy::naming::{quote_ident, ClinicId};
use exit_watch::{Backend, ExitWatch};
use registry::{Found, Key, Registry, Released};

/// A connection older than this is closed when released, not reused, so
/// long-lived backends do not accumulate memory.
const MAX_LIFETIME: Duration = Duration::from_secs(30 * 60);

/// How long a clinic with no connection waits for another clinic's second
/// (or later) connection to be released before it takes one's last.
const LAST_CONNECTION_GRACE: Duration = Duration::from_millis(50);

/// How long closing one connection, and waiting for its backend to exit,
/// may take before its permit is given back regardless.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("clinic {0} has no provisioned database")]
    NotProvisioned(ClinicId),
    #[error("the stored password of clinic {0} cannot be unsealed with this MASTER_KEY")]
    Unsealable(ClinicId),
    #[error("central database")]
    Central(#[from] sqlx::Error),
    #[error("clinic {0}: {1}")]
    Unavailable(ClinicId, Unavailable),
}

/// Why a clinic connection could not be had.
#[derive(Debug, thiserror::Error)]
pub enum Unavailable {
    #[error("no connection within the checkout timeout")]
    Timeout,
    #[error("cannot connect")]
    Connect(#[source] sqlx::Error),
    #[error("the connection registry is closed")]
    Closed,
}

/// The registry of clinic connections. Cheap to share (`Arc` inside).
pub struct ClinicPools {
    shared: Arc<Shared>,
}

struct Shared {
    central: PgPool,
    /// Where closed connections' backends are watched until they exit.
    exits: ExitWatch,
    keys: Arc<MasterKeys>,
    /// Connection settings shared with the admin connection (TLS mode,
    /// timeouts) plus the statement timeout; host, port, database and
    /// credentials are the clinic's.
    base_options: PgConnectOptions,
    settings: PoolSettings,
    /// One permit per open clinic connection.
    budget: Arc<Semaphore>,
    /// Signalled when a connection is released while checkouts wait for
    /// the budget: one of them may evict it.
    idled: Notify,
    /// Entries are connection targets: a dedicated clinic's database (by
    /// the clinic's id) or a pod (by the pod's id).
    registry: Mutex<Registry<Arc<Clinic>, Live>>,
    /// Where each clinic opened here connects (see [`Route`]).
    routes: Mutex<HashMap<ClinicId, Route>>,
    /// Connections each clinic holds checked out right now (on the shared
    /// tier, of its pod's).
    busy: Mutex<HashMap<ClinicId, usize>>,
    /// Transactions dropped without commit, rolled back before release.
    rolled_back: AtomicU64,
    /// Connections released still in a transaction, closed instead.
    refused_in_transaction: AtomicU64,
}

/// Where a clinic's transactions go: the registry entry (its own, or its
/// pod's) and, on the shared tier, the statement that puts a transaction
/// in the clinic's scope.
#[derive(Clone)]
struct Route {
    target: ClinicId,
    scope: Option<Arc<str>>,
}

impl Route {
    fn of(id: ClinicId, placement: &Placement) -> Self {
        match &placement.shared {
            None => Self {
                target: id,
                scope: None,
            },
            Some(shared) => Self {
                target: ClinicId(shared.pod_id),
                scope: Some(
                    format!(
                        "SET LOCAL ROLE {}; SET LOCAL search_path TO {}",
                        quote_ident(&shared.serving_role),
                        quote_ident(&shared.schema)
                    )
                    .into(),
                ),
            },
        }
    }
}

/// A registry entry opened in this instance (a dedicated clinic, or a
/// pod): its credentials, unsealed once.
struct Clinic {
    /// The entry's id: the clinic's, or the pod's.
    id: ClinicId,
    /// A clinic whose placement gives these credentials (read again when
    /// the password is refused).
    placed: ClinicId,
    /// Its entry in the registry.
    key: Key,
    credentials: OnceCell<Credentials>,
    /// Checkout permits: the per-clinic maximum.
    checkouts: Arc<Semaphore>,
    /// Signalled when one of its connections is released or lost.
    released: Notify,
}

/// An open connection and the budget permit it holds.
struct Live {
    conn: PgConnection,
    permit: OwnedSemaphorePermit,
    opened_at: Instant,
    backend: Backend,
}

/// What a checkout ends with: a connection, or the right to open one.
enum Got<'a> {
    Idle(Live),
    Permit(OwnedSemaphorePermit, Opening<'a>),
}

/// A connection the registry counts as open from the moment it may be
/// opened, so that the clinic's other checkouts wait for it rather than
/// open (or evict for) more. Dropped before [`Opening::opened`] (the
/// connect failed, the deadline passed, the request was abandoned), it is
/// counted out again.
struct Opening<'a> {
    shared: &'a Shared,
    clinic: &'a Arc<Clinic>,
    opened: bool,
}

impl<'a> Opening<'a> {
    /// For a connection the registry has counted already.
    fn counted(shared: &'a Shared, clinic: &'a Arc<Clinic>) -> Self {
        Self {
            shared,
            clinic,
            opened: false,
        }
    }

    fn opened(mut self) {
        self.opened = true;
    }
}

impl Drop for Opening<'_> {
    fn drop(&mut self) {
        if !self.opened {
            self.shared.lost(self.clinic);
        }
    }
}

/// A checkout counted as waiting for the budget, until dropped.
struct WaitingForBudget<'a>(&'a Shared);

impl Drop for WaitingForBudget<'_> {
    fn drop(&mut self) {
        self.0.lock().stop_waiting();
    }
}

impl ClinicPools {
    pub fn new(
        central: PgPool,
        keys: Arc<MasterKeys>,
        base_options: PgConnectOptions,
        settings: PoolSettings,
    ) -> Self {
        let shared = Arc::new(Shared {
            exits: ExitWatch::new(central.clone(), base_options.clone()),
            central,
            keys,
            base_options,
            budget: Arc::new(Semaphore::new(settings.max_connections as usize)),
            idled: Notify::new(),
            settings,
            registry: Mutex::new(Registry::default()),
            routes: Mutex::new(HashMap::new()),
            busy: Mutex::new(HashMap::new()),
            rolled_back: AtomicU64::new(0),
            refused_in_transaction: AtomicU64::new(0),
        });
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(sweep(Arc::downgrade(&shared)));
        }
        Self { shared }
    }

    /// The clinic's handle, opened from its central record on first use.
    pub async fn pool(&self, id: ClinicId) -> Result<ClinicPool, PoolError> {
        let known = self.shared.route(id);
        let (route, placement) = match known {
            Some(route) => (route, None),
            None => {
                let placement = companies::placement(&self.shared.central, id)
                    .await?
                    .ok_or(PoolError::NotProvisioned(id))?;
                let route = Route::of(id, &placement);
                (route, Some(placement))
            }
        };
        let clinic = self.shared.clinic(id, &route);
        let opened = clinic
            .credentials
            .get_or_try_init(|| async {
                let placement = match placement {
                    Some(placement) => placement,
                    None => companies::placement(&self.shared.central, id)
                        .await?
                        .ok_or(PoolError::NotProvisioned(id))?,
                };
                let mut known = self.shared.options(id, &placement)?;
                Ok(Credentials::new(known.remove(0)))
            })
            .await;
        if let Err(error) = opened {
            self.shared.forget_unopened(&clinic);
            self.shared.forget_route(id);
            return Err(error);
        }
        self.shared.remember_route(id, &route);
        Ok(ClinicPool {
            shared: self.shared.clone(),
            clinic,
            id,
            scope: route.scope,
        })
    }

    /// Closes a clinic's connections and forgets its credentials
    /// (suspension, deletion, restore). Busy connections close on release.
    /// A shared-tier clinic only forgets its route: its pod's connections
    /// serve other clinics (and its next transaction takes the new route).
    pub async fn close(&self, id: ClinicId) {
        self.shared.forget_route(id);
        let removed = self.shared.lock().remove(id);
        let idle = removed.map(|(_, idle)| idle).unwrap_or_default();
        close_all(&self.shared.exits, idle).await;
    }

    /// [`close`](Self::close)s every clinic open now, so that each reads its
    /// placement again on next use; unlike [`close_all`](Self::close_all),
    /// later checkouts open them again (change notices were missed).
    pub async fn close_each(&self) {
        self.shared.routes.lock().expect("routes lock").clear();
        let ids = self.shared.lock().clinic_ids();
        for id in ids {
            self.close(id).await;
        }
    }

    /// Closes every connection; later checkouts fail (shutdown).
    pub async fn close_all(&self) {
        let closed = self.shared.lock().close();
        let idle = closed.into_iter().flat_map(|(_, idle)| idle).collect();
        close_all(&self.shared.exits, idle).await;
    }

    /// Clinic connections open right now, idle or busy.
    pub fn open_connections(&self) -> usize {
        self.shared.lock().open()
    }

    /// The clinics holding connections checked out right now, and how many.
    pub fn busy_clinics(&self) -> Vec<(ClinicId, usize)> {
        let busy = self.shared.busy.lock().expect("busy lock");
        busy.iter().map(|(id, n)| (*id, *n)).collect()
    }

    /// Clinics opened (credentials in memory) right now.
    pub fn open_clinics(&self) -> usize {
        self.shared.lock().clinics()
    }

    /// Transactions ended without commit, rolled back before their
    /// connection served anyone else, since start.
    pub fn rolled_back_on_release(&self) -> u64 {
        self.shared.rolled_back.load(Ordering::Relaxed)
    }

    /// Connections released still in a transaction (closed, not reused),
    /// since start.
    pub fn refused_in_transaction(&self) -> u64 {
        self.shared.refused_in_transaction.load(Ordering::Relaxed)
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Registry<Arc<Clinic>, Live>> {
        self.registry
            .lock()
            .expect("clinic connection registry lock")
    }

    /// The entry `route` leads clinic `id` to, created (not yet opened)
    /// if missing.
    fn clinic(&self, id: ClinicId, route: &Route) -> Arc<Clinic> {
        let most = if route.scope.is_some() {
            self.settings.per_pod_max
        } else {
            self.settings.per_clinic_max
        };
        self.lock().entry(route.target, Instant::now(), |key| {
            Arc::new(Clinic {
                id: route.target,
                placed: id,
                key,
                credentials: OnceCell::new(),
                checkouts: Arc::new(Semaphore::new(most as usize)),
                released: Notify::new(),
            })
        })
    }

    fn route(&self, id: ClinicId) -> Option<Route> {
        self.routes.lock().expect("routes lock").get(&id).cloned()
    }

    fn remember_route(&self, id: ClinicId, route: &Route) {
        self.routes
            .lock()
            .expect("routes lock")
            .insert(id, route.clone());
    }

    fn forget_route(&self, id: ClinicId) {
        self.routes.lock().expect("routes lock").remove(&id);
    }

    /// Drops an entry whose opening failed, so the next request retries.
    fn forget_unopened(&self, clinic: &Arc<Clinic>) {
        if clinic.credentials.get().is_none() {
            self.lock().forget_empty(clinic.key);
        }
    }

    /// Reads clinic `id`'s placement from central and unseals its
    /// passwords (see [`Shared::options`]).
    async fn credentials(&self, id: ClinicId) -> Result<Vec<PgConnectOptions>, PoolError> {
        let placement = companies::placement(&self.central, id)
            .await?
            .ok_or(PoolError::NotProvisioned(id))?;
        self.options(id, &placement)
    }

    /// The connect options of a placement, one per password it unseals:
    /// the one in place, then one being rotated in (see `ops::keys`).
    /// Never empty.
    fn options(
        &self,
        id: ClinicId,
        placement: &Placement,
    ) -> Result<Vec<PgConnectOptions>, PoolError> {
        let sealed_for = placement.sealed_for(id);
        let options: Vec<_> = placement
            .sealed_passwords()
            .filter_map(|sealed| self.keys.open(sealed, sealed_for.as_bytes()).ok())
            .filter_map(|password| String::from_utf8(password).ok())
            .map(|password| {
                self.base_options
                    .clone()
                    .host(&placement.db_host)
                    .port(u16::try_from(placement.db_port).unwrap_or(5432))
                    .database(&placement.db_name)
                    .username(&placement.db_user)
                    .password(&password)
                    .application_name("medicalpro-clinic")
            })
            .collect();
        if options.is_empty() {
            return Err(PoolError::Unsealable(id));
        }
        Ok(options)
    }

    /// Connects with the clinic's credentials. When the server refuses the
    /// password (rotated since they were read), reads them again from
    /// central and keeps the first that logs in.
    async fn connect(
        &self,
        clinic: &Clinic,
        credentials: &Credentials,
    ) -> Result<(PgConnection, Backend), sqlx::Error> {
        let refused = match connect(&credentials.get()).await {
            Err(error) if is_password_refused(&error) => error,
            connected => return connected,
        };
        let Ok(known) = self.credentials(clinic.placed).await else {
            return Err(refused);
        };
        for options in known {
            match connect(&options).await {
                Ok(connected) => {
                    credentials.replace(options);
                    return Ok(connected);
                }
                Err(error) if is_password_refused(&error) => {}
                Err(error) => return Err(error),
            }
        }
        Err(refused)
    }

    /// Takes a connection back: kept idle, unless its clinic's entry is
    /// gone, it is old, or it is still in a transaction (refused and
    /// counted). A clinic waiting for the budget is told, to evict it.
    fn release(&self, clinic: &Arc<Clinic>, live: Live) {
        let in_transaction = PgTransactionManager::get_transaction_depth(&live.conn) > 0;
        if in_transaction {
            self.refused_in_transaction.fetch_add(1, Ordering::Relaxed);
            tracing::error!(clinic.id = %clinic.id, "a connection came back in a transaction: closed");
        }
        let usable = !in_transaction && live.opened_at.elapsed() < MAX_LIFETIME;
        let released = self
            .lock()
            .release(clinic.key, live, usable, Instant::now());
        match released {
            Released::Kept { wake_waiters: true } => self.idled.notify_waiters(),
            Released::Kept {
                wake_waiters: false,
            } => {}
            Released::Close(live) => close_later(&self.exits, live),
        }
        clinic.released.notify_waiters();
    }

    /// Counts the connection a permit acquired while waiting will open.
    fn opening<'a>(
        &'a self,
        clinic: &'a Arc<Clinic>,
        permit: Result<OwnedSemaphorePermit, tokio::sync::AcquireError>,
    ) -> Result<Got<'a>, Unavailable> {
        let permit = permit.map_err(|_| Unavailable::Closed)?;
        self.lock().count_opening(clinic.key);
        Ok(Got::Permit(permit, Opening::counted(self, clinic)))
    }

    /// Counts a connection closed while checked out (broken or failed), or
    /// one that could not be opened.
    fn lost(&self, clinic: &Arc<Clinic>) {
        self.lock().lost(clinic.key);
        clinic.released.notify_waiters();
    }

    /// Closes connections idle too long, and forgets clinics left with no
    /// connection for as long (unless a request holds them).
    fn sweep(&self) -> Vec<Live> {
        self.lock()
            .sweep(self.settings.idle_timeout, Instant::now(), |clinic| {
                Arc::strong_count(clinic) > 1
            })
    }
}

/// One clinic's connections, as a request sees them.
#[derive(Clone)]
pub struct ClinicPool {
    shared: Arc<Shared>,
    /// The registry entry: the clinic's own, or its pod's.
    clinic: Arc<Clinic>,
    id: ClinicId,
    /// Shared tier: what puts a transaction in the clinic's role and schema.
    scope: Option<Arc<str>>,
}

/// What [`ClinicPool::run_alone`] runs: one statement on the connection.
pub type Statement<'c, T> = Pin<Box<dyn Future<Output = Result<T, sqlx::Error>> + Send + 'c>>;

impl ClinicPool {
    pub fn clinic_id(&self) -> ClinicId {
        self.id
    }

    /// A transaction on the clinic's database, within the checkout timeout.
    pub async fn begin(&self) -> Result<ClinicTransaction, PoolError> {
        self.begin_with("BEGIN").await
    }

    /// A transaction that PostgreSQL keeps from writing anything.
    pub async fn begin_read_only(&self) -> Result<ClinicTransaction, PoolError> {
        self.begin_with("BEGIN READ ONLY").await
    }

    /// `begin`, then (shared tier) the clinic's scope, in one round trip.
    async fn begin_with(&self, begin: &'static str) -> Result<ClinicTransaction, PoolError> {
        let statement: std::borrow::Cow<'static, str> = match &self.scope {
            None => begin.into(),
            Some(scope) => format!("{begin}; {scope}").into(),
        };
        let (mut lease, deadline) = self.lease().await?;
        let unavailable = |reason| PoolError::Unavailable(self.id, reason);
        loop {
            let (live, fresh) = self.connection(deadline).await.map_err(unavailable)?;
            lease.live = Some(live);
            let begun = timeout_at(
                deadline,
                PgTransactionManager::begin(lease.conn(), Some(statement.clone())),
            )
            .await;
            let error = match begun {
                Ok(Ok(())) => return Ok(ClinicTransaction { lease, open: true }),
                Ok(Err(error)) => Unavailable::Connect(error),
                Err(_) => Unavailable::Timeout,
            };
            // An idle connection may have been closed by the server: close
            // it and go on with the next one, until a fresh one fails.
            if let Some(live) = lease.discard() {
                close_later(&self.shared.exits, live);
            }
            if fresh {
                return Err(unavailable(error));
            }
        }
    }

    /// Runs one statement as its own transaction: one round trip, where
    /// `begin`, the statement and `commit` take three. A reused connection
    /// found closed by the server is dropped and the statement run again on
    /// the next one, so it must bear running twice (a read). The outer
    /// error: no connection; the inner: the statement's own. On the shared
    /// tier, the statement needs the clinic's scope, hence a transaction.
    pub async fn run_alone<T>(
        &self,
        statement: impl for<'c> Fn(&'c mut PgConnection) -> Statement<'c, T>,
    ) -> Result<Result<T, sqlx::Error>, PoolError> {
        if self.scope.is_some() {
            let mut tx = self.begin().await?;
            return Ok(match statement(&mut tx).await {
                Ok(value) => tx.commit().await.map(|()| value),
                Err(error) => Err(error),
            });
        }
        let (mut lease, deadline) = self.lease().await?;
        loop {
            let (live, fresh) = self
                .connection(deadline)
                .await
                .map_err(|reason| PoolError::Unavailable(self.id, reason))?;
            lease.live = Some(live);
            match statement(lease.conn()).await {
                Err(error) if connection_lost(&error) => {
                    if let Some(live) = lease.discard() {
                        close_later(&self.shared.exits, live);
                    }
                    if fresh {
                        return Ok(Err(error));
                    }
                }
                result => return Ok(result),
            }
        }
    }

    /// A checkout slot of the clinic's (within the checkout timeout), and
    /// the deadline for the connection itself.
    async fn lease(&self) -> Result<(Lease, tokio::time::Instant), PoolError> {
        let unavailable = |reason| PoolError::Unavailable(self.id, reason);
        let deadline = tokio::time::Instant::now() + self.shared.settings.checkout_timeout;
        let checkout = timeout_at(deadline, self.clinic.checkouts.clone().acquire_owned())
            .await
            .map_err(|_| unavailable(Unavailable::Timeout))?
            .map_err(|_| unavailable(Unavailable::Closed))?;
        let lease = Lease {
            shared: self.shared.clone(),
            clinic: self.clinic.clone(),
            live: None,
            checkout: Some(checkout),
            roll_back: false,
            _busy: Busy::new(&self.shared, self.id),
        };
        Ok((lease, deadline))
    }

    /// A connection (idle, or newly opened within the budget) and whether it
    /// is new.
    async fn connection(
        &self,
        deadline: tokio::time::Instant,
    ) -> Result<(Live, bool), Unavailable> {
        let shared = &self.shared;
        // Fixed once: wake-ups while waiting do not push it back.
        let grace_ends = tokio::time::Instant::now() + LAST_CONNECTION_GRACE;
        let got = timeout_at(deadline, async {
            loop {
                // Registered before looking, so no release is missed.
                // Releases wake every registered waiter (`notify_waiters`):
                // a single wake-up could go to a checkout that registered
                // but then waits for the other signal, and be lost.
                let released = self.clinic.released.notified();
                let idled = shared.idled.notified();
                tokio::pin!(released, idled);
                released.as_mut().enable();
                idled.as_mut().enable();
                let budget = shared.budget.clone();
                let may_take_last = tokio::time::Instant::now() >= grace_ends;
                let found = shared.lock().find(
                    self.clinic.key,
                    may_take_last,
                    Instant::now(),
                    || budget.clone().try_acquire_owned().ok(),
                );
                let opening = || Opening::counted(shared, &self.clinic);
                match found {
                    Found::Closed => return Err(Unavailable::Closed),
                    Found::Idle(live) => return Ok(Got::Idle(live)),
                    Found::Permit(permit) => return Ok(Got::Permit(permit, opening())),
                    Found::Evicted(live) => {
                        let opening = opening();
                        let permit = close_now(&shared.exits, live).await;
                        return Ok(Got::Permit(permit, opening));
                    }
                    Found::WaitOwn => {
                        // Released: look again; or a permit came first.
                        tokio::select! {
                            _ = released => {}
                            permit = budget.acquire_owned() => return shared.opening(&self.clinic, permit),
                        }
                    }
                    Found::WaitBudget => {
                        let _waiting = WaitingForBudget(shared);
                        // A connection released: look again (to evict it);
                        // or a permit came first. Past the grace, a
                        // clinic's last connection may be taken.
                        tokio::select! {
                            _ = idled => {}
                            _ = tokio::time::sleep_until(grace_ends), if !may_take_last => {}
                            permit = budget.acquire_owned() => return shared.opening(&self.clinic, permit),
                        }
                    }
                }
            }
        })
        .await
        .map_err(|_| Unavailable::Timeout)??;
        let (permit, opening) = match got {
            Got::Permit(permit, opening) => (permit, opening),
            Got::Idle(live) => return Ok((live, false)),
        };
        // A permit came while waiting: one of ours may be idle by now.
        let idle = shared.lock().pop_idle(self.clinic.id, Instant::now());
        if let Some(live) = idle {
            drop((permit, opening));
            return Ok((live, false));
        }
        let connected = match self.clinic.credentials.get() {
            Some(credentials) => timeout_at(deadline, shared.connect(&self.clinic, credentials))
                .await
                .map_err(|_| Unavailable::Timeout)
                .and_then(|connected| connected.map_err(Unavailable::Connect)),
            None => Err(Unavailable::Closed),
        };
        let (conn, backend) = connected?;
        opening.opened();
        Ok((
            Live {
                conn,
                permit,
                opened_at: Instant::now(),
                backend,
            },
            true,
        ))
    }
}

/// A checked-out connection: returned to the registry when dropped.
struct Lease {
    shared: Arc<Shared>,
    clinic: Arc<Clinic>,
    live: Option<Live>,
    /// Held until the connection is back in the registry.
    checkout: Option<OwnedSemaphorePermit>,
    /// A transaction was left open on the connection: roll it back first.
    roll_back: bool,
    _busy: Busy,
}

/// A clinic's checkout, counted in [`ClinicPools::busy_clinics`] until
/// dropped.
struct Busy {
    shared: Arc<Shared>,
    id: ClinicId,
}

impl Busy {
    fn new(shared: &Arc<Shared>, id: ClinicId) -> Self {
        *shared
            .busy
            .lock()
            .expect("busy lock")
            .entry(id)
            .or_default() += 1;
        Self {
            shared: shared.clone(),
            id,
        }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let mut busy = self.shared.busy.lock().expect("busy lock");
        if let Some(count) = busy.get_mut(&self.id) {
            *count -= 1;
            if *count == 0 {
                busy.remove(&self.id);
            }
        }
    }
}

impl Lease {
    fn conn(&mut self) -> &mut PgConnection {
        &mut self
            .live
            .as_mut()
            .expect("a lease holds its connection until dropped")
            .conn
    }

    /// Takes the connection out of the registry's count, to close it.
    fn discard(&mut self) -> Option<Live> {
        let live = self.live.take()?;
        self.shared.lost(&self.clinic);
        Some(live)
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let Some(live) = self.live.take() else {
            return;
        };
        if !self.roll_back {
            self.shared.release(&self.clinic, live);
            return;
        }
        let (shared, clinic) = (self.shared.clone(), self.clinic.clone());
        let checkout = self.checkout.take();
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    roll_back_then_release(&shared, &clinic, live).await;
                    drop(checkout);
                });
            }
            // No runtime left to roll back on: the connection goes, and
            // its backend rolls back as it exits.
            Err(_) => self.shared.lost(&self.clinic),
        }
    }
}

/// Rolls back the transaction left open on `live`, then releases it; if
/// that fails, closes it.
async fn roll_back_then_release(shared: &Shared, clinic: &Arc<Clinic>, mut live: Live) {
    let rolled_back = tokio::time::timeout(
        CLOSE_TIMEOUT,
        PgTransactionManager::rollback(&mut live.conn),
    )
    .await;
    if let Ok(Ok(())) = rolled_back {
        shared.rolled_back.fetch_add(1, Ordering::Relaxed);
        shared.release(clinic, live);
    } else {
        shared.lost(clinic);
        close_later(&shared.exits, live);
    }
}

/// A transaction on a clinic database. Derefs to the connection; dropped
/// without [`commit`](Self::commit), it rolls back, and the connection goes
/// back to the registry either way.
pub struct ClinicTransaction {
    lease: Lease,
    open: bool,
}

impl ClinicTransaction {
    pub async fn commit(mut self) -> Result<(), sqlx::Error> {
        PgTransactionManager::commit(self.lease.conn()).await?;
        self.open = false;
        Ok(())
    }

    pub async fn rollback(mut self) -> Result<(), sqlx::Error> {
        PgTransactionManager::rollback(self.lease.conn()).await?;
        self.open = false;
        Ok(())
    }
}

impl Deref for ClinicTransaction {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        &self
            .lease
            .live
            .as_ref()
            .expect("a lease holds its connection until dropped")
            .conn
    }
}

impl DerefMut for ClinicTransaction {
    fn deref_mut(&mut self) -> &mut PgConnection {
        self.lease.conn()
    }
}

impl Drop for ClinicTransaction {
    fn drop(&mut self) {
        // The lease rolls back before releasing the connection.
        self.lease.roll_back = self.open;
    }
}

/// A clinic's connect options, replaced when its password was rotated.
struct Credentials(std::sync::RwLock<PgConnectOptions>);

impl Credentials {
    fn new(options: PgConnectOptions) -> Self {
        Self(std::sync::RwLock::new(options))
    }

    fn get(&self) -> PgConnectOptions {
        self.0.read().expect("credentials lock").clone()
    }

    fn replace(&self, options: PgConnectOptions) {
        *self.0.write().expect("credentials lock") = options;
    }
}

/// The server refused the password (SQLSTATE 28P01).
fn is_password_refused(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.code().as_deref() == Some("28P01"))
}

/// Opens a connection and learns its backend's process id.
async fn connect(options: &PgConnectOptions) -> Result<(PgConnection, Backend), sqlx::Error> {
    let mut conn = options.connect().await?;
    let pid = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut conn)
        .await?;
    let database = options.get_database().unwrap_or_default().to_owned();
    let server = (options.get_host().to_owned(), options.get_port());
    Ok((
        conn,
        Backend {
            pid,
            database,
            server,
        },
    ))
}

/// Closes a connection and waits for its backend to exit, then gives its
/// permit back (returned, to reuse). A closed backend counts toward the
/// server's `max_connections` until its process has exited, a moment after
/// the close: freeing the permit before would let the budget be exceeded.
async fn close_now(exits: &ExitWatch, live: Live) -> OwnedSemaphorePermit {
    let Live {
        conn,
        permit,
        backend,
        ..
    } = live;
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
        conn.close().await.ok();
        exits.until_exited(&backend).await;
    })
    .await;
    permit
}

/// Whether `error` says the connection is gone (rather than the statement
/// refused): I/O and protocol failures, and the server's own "connection
/// exception" (08) and shutdown or termination of its backend (57P).
pub fn connection_lost(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_) | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|code| code.starts_with("08") || code.starts_with("57P")),
        _ => false,
    }
}

/// Whether `error` is a statement cancelled by the server (57014: past
/// `statement_timeout`, or cancelled by an operator): the connection is
/// fine and the statement did not run, so it is neither retried (a write
/// must not run twice) nor a fault of the request; the API answers 503.
pub fn statement_cancelled(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.code().as_deref() == Some("57014"))
}

/// Whether `error` is a write the clinic's role may not make (42501): the
/// login role holds every privilege the product's queries use, except
/// while `medicalpro clinic move` freezes the clinic's writes (see
/// `ops::moves`), so the API answers 503 to retry, not 500.
pub fn writes_frozen(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.code().as_deref() == Some("42501"))
}

/// Closes a connection in the background; its permit is freed only then.
fn close_later(exits: &ExitWatch, live: Live) {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            let exits = exits.clone();
            runtime.spawn(async move { close_now(&exits, live).await });
        }
        Err(_) => drop(live),
    }
}

async fn close_all(exits: &ExitWatch, connections: Vec<Live>) {
    for live in connections {
        drop(close_now(exits, live).await);
    }
}

/// Closes idle connections past the idle timeout until the registry is gone.
async fn sweep(shared: Weak<Shared>) {
    let period = shared
        .upgrade()
        .map(|shared| (shared.settings.idle_timeout / 4).max(Duration::from_millis(250)))
        .unwrap_or_default();
    loop {
        tokio::time::sleep(period).await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let expired = shared.sweep();
        let exits = shared.exits.clone();
        drop(shared);
        close_all(&exits, expired).await;
    }
}
