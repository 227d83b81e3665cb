//! Keeping every instance's caches true to central: each `serve` instance
//! holds one connection to central that `LISTEN`s on
//! [`notify::CHANNEL`], and drops what a notice names at once (clinic
//! state, account standing, clinic connections): a change made anywhere is
//! seen everywhere within milliseconds rather than a cache lifetime.
//!
//! When that connection is lost, the caches' short lifetimes
//! ([`crate::tenancy::state::STATE_TTL`], [`crate::auth::accounts::ACCOUNT_TTL`])
//! bound how stale an instance can be, and the listener connects again
//! (after [`RETRY_FIRST`], doubling up to [`RETRY_MAX`]); once listening
//! again it clears every cache and closes every clinic's connections, since
//! notices sent meanwhile were missed.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::postgres::{PgListener, PgPoolOptions};
use sqlx::PgPool;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::auth::accounts::AccountCache;
use crate::central::notify::{self, Change};
use crate::tenancy::pools::ClinicPools;
use crate::tenancy::state::StateCache;

/// The listener's `application_name` on central (`pg_stat_activity`).
pub const APPLICATION_NAME: &str = "medicalpro-listener";
/// The first wait before connecting again after the connection is lost.
pub const RETRY_FIRST: Duration = Duration::from_millis(100);
/// The longest wait between two attempts to connect.
pub const RETRY_MAX: Duration = Duration::from_secs(5);

/// What a notice invalidates.
#[derive(Clone)]
pub struct Caches {
    pub states: Arc<StateCache>,
    pub accounts: Arc<AccountCache>,
    pub pools: Arc<ClinicPools>,
}

impl Caches {
    /// Drops what this instance knows of the change's subject.
    pub fn apply(&self, change: Change) {
        match change {
            // Its connections stay: refused requests use none, and the
            // idle sweep closes them.
            Change::Clinic(id) => self.states.forget(id),
            Change::Placement(id) => {
                self.states.forget(id);
                // Closing waits for the backends to exit; the next notice
                // need not.
                let pools = self.pools.clone();
                tokio::spawn(async move { pools.close(id).await });
            }
            Change::Account(id) => self.accounts.forget(id),
        }
    }

    /// Drops everything: notices may have been missed.
    pub async fn clear(&self) {
        self.states.clear();
        self.accounts.clear();
        self.pools.close_each().await;
    }
}

/// One instance's listener: started by `serve` ([`Coherence::start`]),
/// stopped at shutdown ([`Coherence::stop`]).
pub struct Coherence {
    /// A pool of one connection to central, under [`APPLICATION_NAME`].
    pool: PgPool,
    caches: Caches,
    stop: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
    listening: AtomicBool,
    connections: AtomicU64,
}

impl Coherence {
    /// A listener on `central`'s database, not started; connects nothing yet.
    pub fn new(central: &PgPool, caches: Caches) -> Arc<Self> {
        let options = central
            .connect_options()
            .as_ref()
            .clone()
            .application_name(APPLICATION_NAME);
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            .acquire_timeout(Duration::from_secs(5))
            .connect_lazy_with(options);
        Arc::new(Self {
            pool,
            caches,
            stop: watch::channel(false).0,
            task: Mutex::new(None),
            listening: AtomicBool::new(false),
            connections: AtomicU64::new(0),
        })
    }

    /// Starts listening in the background (once; later calls do nothing).
    pub fn start(self: &Arc<Self>) {
        let mut task = self.task.lock().expect("listener task lock");
        if task.is_none() && !*self.stop.borrow() {
            let this = self.clone();
            let mut stopped = self.stop.subscribe();
            *task = Some(tokio::spawn(async move {
                tokio::select! {
                    () = this.run() => {}
                    _ = stopped.wait_for(|stopped| *stopped) => {}
                }
                this.listening.store(false, Ordering::SeqCst);
            }));
        }
    }

    /// Stops listening and closes the listener's connection.
    pub async fn stop(&self) {
        self.stop.send_replace(true);
        let task = self.task.lock().expect("listener task lock").take();
        if let Some(task) = task {
            let _ = task.await;
        }
        self.pool.close().await;
    }

    /// Whether the listener is connected and listening right now.
    pub fn is_listening(&self) -> bool {
        self.listening.load(Ordering::SeqCst)
    }

    /// How many times the listener has started listening (1 once started,
    /// one more per reconnection).
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::SeqCst)
    }

    async fn run(&self) {
        let mut retry = RETRY_FIRST;
        loop {
            match self.listen().await {
                Ok(mut listener) => {
                    retry = RETRY_FIRST;
                    let reconnection = self.connections.fetch_add(1, Ordering::SeqCst) > 0;
                    if reconnection {
                        // Listening again first, then clearing: a change
                        // made from now on is noticed, one made before is
                        // read afresh.
                        self.caches.clear().await;
                        tracing::info!("change listener connected again: caches cleared");
                    } else {
                        tracing::info!("change listener connected");
                    }
                    self.listening.store(true, Ordering::SeqCst);
                    let error = self.receive(&mut listener).await;
                    self.listening.store(false, Ordering::SeqCst);
                    tracing::warn!(
                        error = %error,
                        retry_ms = retry.as_millis() as u64,
                        "change listener lost its connection: caches expire on their own until it is back"
                    );
                }
                Err(error) => {
                    tracing::warn!(
                        error = %error,
                        retry_ms = retry.as_millis() as u64,
                        "change listener cannot connect to central"
                    );
                }
            }
            tokio::time::sleep(retry).await;
            retry = (retry * 2).min(RETRY_MAX);
        }
    }

    async fn listen(&self) -> Result<PgListener, sqlx::Error> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.eager_reconnect(false);
        listener.listen(notify::CHANNEL).await?;
        Ok(listener)
    }

    /// Applies notices until the connection is lost; why it was.
    async fn receive(&self, listener: &mut PgListener) -> sqlx::Error {
        loop {
            match listener.try_recv().await {
                Ok(Some(notification)) => match Change::parse(notification.payload()) {
                    Some(change) => self.caches.apply(change),
                    None => tracing::debug!("change notice of an unknown kind ignored"),
                },
                Ok(None) => {
                    return sqlx::Error::Io(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "connection closed",
                    ))
                }
                Err(error) => return error,
            }
        }
    }
}
