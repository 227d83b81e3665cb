//! Assembling the application from settings: the embedded cluster when no
//! `DATABASE_URL` is given, the central database, the clinic pools, the
//! router; and `serve` (which also listens for other instances' changes,
//! [`crate::coherence`]), which runs it until Ctrl-C or SIGTERM, then drains
//! requests in flight (at most [`DRAIN_TIMEOUT`]), closes the pools and
//! stops the embedded cluster.

use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::auth::accounts::AccountCache;
use crate::auth::jwt::TokenKeys;
use crate::auth::password::Hasher;
use crate::central::{with_statement_timeout, Databases};
use crate::coherence::{Caches, Coherence};
use crate::config::{ConfigError, DatabaseArgs, DbPrefix, ServeArgs, ServeSettings, Settings};
use crate::crypto::{JwtSecret, Keyring, MasterKey};
use crate::embedded::{self, Durability, RunningCluster};
use crate::http::metrics::Metrics;
use crate::http::state::AppState;
use crate::master_keys::{KeyFiles, MasterKeys};
use crate::tenancy::audit_sealer::AuditSealer;
use crate::tenancy::pools::ClinicPools;
use crate::tenancy::provisioning::Provisioner;
use crate::tenancy::state::StateCache;

/// Settings, and the embedded cluster when this process runs one.
pub struct Environment {
    pub settings: Settings,
    pub cluster: Option<RunningCluster>,
}

/// Whether a process may make the embedded cluster and its keys when
/// `DATA_DIR` has none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Setup {
    /// `serve` and `init`: create what is missing.
    Create,
    /// Every other command: use what exists, refuse (saying where it
    /// looked) when there is nothing.
    Existing,
}

impl Environment {
    /// Checks the configuration; with no `DATABASE_URL`, starts the
    /// embedded cluster of `DATA_DIR` and loads its keys. Creates nothing:
    /// with no cluster or key there, fails with
    /// [`embedded::EmbeddedError::NotInitialised`].
    pub async fn resolve(args: &DatabaseArgs) -> anyhow::Result<Self> {
        Self::open(args, Setup::Existing).await
    }

    /// [`resolve`](Self::resolve) for `serve` and `init`: with no
    /// `DATABASE_URL`, creates the embedded cluster and generates its keys
    /// on first use.
    pub async fn initialise(args: &DatabaseArgs) -> anyhow::Result<Self> {
        Self::open(args, Setup::Create).await
    }

    async fn open(args: &DatabaseArgs, setup: Setup) -> anyhow::Result<Self> {
        let prefix = DbPrefix::parse(&args.db_prefix)?;
        let pool = args.pool_settings()?;
        let master_key_previous = args
            .master_key_previous
            .as_deref()
            .map(|key| MasterKey::parse_setting(key, "MASTER_KEY_PREVIOUS"))
            .transpose()?;
        let provisioning = args.provisioning_settings()?;
        let refresh_family_max_days = args.refresh_family_max_days()?;
        let metrics_token = args.metrics_token()?;
        let max_concurrent_hashes = args.max_concurrent_hashes()?;
        if let Some(url) = &args.database_url {
            let jwt_secret = args.jwt_secret.as_deref().ok_or_else(|| {
                ConfigError::new("JWT_SECRET", "is required when DATABASE_URL is set")
            })?;
            let master_key = args.master_key.as_deref().ok_or_else(|| {
                ConfigError::new("MASTER_KEY", "is required when DATABASE_URL is set")
            })?;
            return Ok(Self {
                settings: Settings {
                    admin_url: url.clone(),
                    prefix,
                    jwt_secret: JwtSecret::parse(jwt_secret)?,
                    keys: Arc::new(MasterKeys::fixed(Keyring::new(
                        MasterKey::parse(master_key)?,
                        master_key_previous,
                    ))),
                    pool,
                    provisioning,
                    refresh_family_max_days,
                    metrics_token,
                    serving: ServeSettings::default(),
                    max_concurrent_hashes,
                },
                cluster: None,
            });
        }
        let dir = &args.data_dir;
        if setup == Setup::Existing {
            let keys = [
                ("master_key", &args.master_key),
                ("jwt_secret", &args.jwt_secret),
            ];
            let files: Vec<&str> = embedded::CLUSTER_FILES
                .into_iter()
                .chain(
                    keys.iter()
                        .filter(|(_, given)| given.is_none())
                        .map(|(name, _)| *name),
                )
                .collect();
            embedded::require(dir, &files)?;
        }
        let owned = dir.clone();
        let cluster =
            tokio::task::spawn_blocking(move || RunningCluster::start(&owned, Durability::Durable))
                .await??;
        let jwt_secret = match &args.jwt_secret {
            Some(secret) => secret.clone(),
            None => embedded::read_or_create(&dir.join("jwt_secret"), JwtSecret::generate)?,
        };
        let keys = match &args.master_key {
            Some(key) => {
                MasterKeys::fixed(Keyring::new(MasterKey::parse(key)?, master_key_previous))
            }
            None => {
                embedded::read_or_create(&dir.join("master_key"), || {
                    MasterKey::generate().to_base64()
                })?;
                MasterKeys::from_files(KeyFiles::in_dir(dir))?
            }
        };
        Ok(Self {
            settings: Settings {
                admin_url: cluster.admin_url.clone(),
                prefix,
                jwt_secret: JwtSecret::parse(&jwt_secret)?,
                keys: Arc::new(keys),
                pool,
                provisioning,
                refresh_family_max_days,
                metrics_token,
                serving: ServeSettings::default(),
                max_concurrent_hashes,
            },
            cluster: Some(cluster),
        })
    }

    pub fn stop(self) {
        if let Some(cluster) = self.cluster {
            cluster.stop();
        }
    }
}

/// Connects to the databases (migrating central) and builds the shared state.
pub async fn build_state(settings: &Settings) -> anyhow::Result<AppState> {
    let statement_timeout = settings.serving.statement_timeout;
    let databases = Databases::open(
        &settings.admin_url,
        &settings.prefix,
        Some(statement_timeout),
    )
    .await?;
    let pools = ClinicPools::new(
        databases.central.clone(),
        settings.keys.clone(),
        with_statement_timeout(databases.admin_options.clone(), statement_timeout),
        settings.pool,
    );
    let caches = Caches {
        states: Arc::new(StateCache::default()),
        accounts: Arc::new(AccountCache::default()),
        pools: Arc::new(pools),
    };
    Ok(AppState {
        keys: TokenKeys::new(&settings.jwt_secret),
        master_keys: settings.keys.clone(),
        coherence: Coherence::new(&databases.central, caches.clone()),
        pools: caches.pools,
        states: caches.states,
        accounts: caches.accounts,
        provisioner: Provisioner::new(
            databases.clone(),
            settings.prefix.clone(),
            settings.keys.clone(),
            settings.provisioning,
        ),
        databases,
        metrics: Arc::new(Metrics::default()),
        sizes: Arc::default(),
        sealer: Arc::new(AuditSealer::default()),
        hasher: Hasher::new(settings.max_concurrent_hashes),
        read_trail: Arc::default(),
        refresh_family_max_days: settings.refresh_family_max_days,
        metrics_token: settings.metrics_token.clone(),
        trusted_proxies: Arc::new(settings.serving.trusted_proxies.clone()),
        request_timeout: settings.serving.request_timeout,
        registration: settings.serving.registration,
        login_limits: settings.serving.login,
    })
}

/// `medicalpro serve`: runs the HTTP server until Ctrl-C or SIGTERM, then
/// closes the pools and stops the embedded cluster.
pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let serving = args.serve_settings()?;
    let mut environment = Environment::initialise(&args.db).await?;
    environment.settings.serving = serving;
    let result = run_server(&environment.settings, args.listen_addr).await;
    environment.stop();
    result
}

/// How long requests in flight may run on after a stop signal.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(20);

async fn run_server(settings: &Settings, listen_addr: SocketAddr) -> anyhow::Result<()> {
    let state = build_state(settings).await?;
    let listener = tokio::net::TcpListener::bind(listen_addr)
        .await
        .with_context(|| format!("LISTEN_ADDR {listen_addr} cannot be bound"))?;
    tracing::info!(address = %listener.local_addr()?, "listening");
    if state.trusted_proxies.is_empty() {
        tracing::info!("X-Forwarded-For is ignored (no TRUSTED_PROXIES)");
    } else {
        tracing::info!(trusted_proxies = %state.trusted_proxies, "X-Forwarded-For is believed from these proxies");
    }
    if settings.provisioning.from_template {
        let provisioner = state.provisioner.clone();
        tokio::spawn(async move {
            if let Err(error) = provisioner.prepare_template().await {
                tracing::error!(%error, "building the clinic template failed; clinics are migrated meanwhile");
            }
        });
    }
    tokio::spawn(state.provisioner.clone().keep_spares());
    tokio::spawn(state.sizes.clone().keep_sampling(state.databases.clone()));
    state.coherence.start();
    tokio::spawn(state.sealer.clone().run(state.pools.clone()));
    tokio::spawn(crate::central::purge_periodically(
        state.databases.central.clone(),
        settings.refresh_family_max_days,
        settings.serving.login,
    ));
    tokio::spawn(crate::ops::offboarding::destroy_periodically(
        crate::ops::Fleet {
            settings: settings.clone(),
            databases: state.databases.clone(),
        },
    ));
    let result = serve_until(listener, state.clone(), shutdown_signal(), DRAIN_TIMEOUT).await;
    shut_down(&state).await;
    result
}

/// What a stopping server does once requests have drained: stops making
/// spare schemas and the change listener, seals the audit events requests
/// left pending, then closes every connection.
pub async fn shut_down(state: &AppState) {
    state.provisioner.stop_spares().await;
    state.coherence.stop().await;
    state.sealer.seal_marked(&state.pools).await;
    state.pools.close_all().await;
    state.databases.close().await;
}

/// Serves `state` on `listener` until `stop` completes; then accepts no new
/// connection and lets requests in flight finish for at most `drain`.
pub async fn serve_until(
    listener: tokio::net::TcpListener,
    state: AppState,
    stop: impl Future<Output = ()> + Send + 'static,
    drain: Duration,
) -> anyhow::Result<()> {
    let (stopping_tx, mut stopping) = tokio::sync::watch::channel(false);
    let app = crate::http::router(state);
    let server = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        stop.await;
        tracing::info!(
            drain_timeout_s = drain.as_secs(),
            "stop requested: finishing requests in flight"
        );
        let _ = stopping_tx.send(true);
    });
    let deadline = async {
        let _ = stopping.wait_for(|stopping| *stopping).await;
        tokio::time::sleep(drain).await;
    };
    tokio::select! {
        result = server.into_future() => result?,
        () = deadline => tracing::warn!(
            drain_timeout_s = drain.as_secs(),
            "requests still in flight at the drain deadline were cut off"
        ),
    }
    tracing::info!("stopped serving");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate.recv() => {}
    }
}
