//! Server configuration, read from the environment (a `.env` file is loaded
//! first) or from the equivalent command-line flags.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `DATABASE_URL` | admin connection (CREATEDB, CREATEROLE) to the server holding the central database | embedded cluster in `DATA_DIR` |
//! | `DB_PREFIX` | database and role name prefix | `medicalpro` |
//! | `LISTEN_ADDR` | HTTP address | `127.0.0.1:8080` |
//! | `JWT_SECRET` | HMAC key for access tokens (at least 32 bytes) | embedded: generated in `DATA_DIR`; otherwise required |
//! | `MASTER_KEY` | base64 of 32 bytes; encrypts clinic database passwords | embedded: generated in `DATA_DIR`; otherwise required |
//! | `MASTER_KEY_PREVIOUS` | the key being rotated out: tried when `MASTER_KEY` cannot open a password | none |
//! | `DATA_DIR` | embedded cluster and generated keys | `./data` |
//! | `CLINIC_POOL_MAX` | connections one clinic may hold at once (at most 20, the clinic role's own limit) | `5` |
//! | `CLINIC_POOL_IDLE_SECS` | an idle clinic connection is closed after this | `60` |
//! | `MAX_CLINIC_CONNECTIONS` | clinic connections this instance may hold, all clinics together | `60` |
//! | `CLINIC_CHECKOUT_TIMEOUT_MS` | how long a request waits for a clinic connection before answering 503 | `3000` |
//! | `PROVISION_CONCURRENCY` | clinics provisioned at once; more registrations wait their turn | `4` |
//! | `DEFAULT_TIER` | the isolation tier of new clinics: `dedicated` (a database and login role each) or `shared` (a schema and serving role each, in a pod) | `dedicated` |
//! | `POD_MAX_CLINICS` | shared tier: clinics one pod database holds before a new pod is made | `500` |
//! | `POD_SPARE_SCHEMAS` | shared tier: clinic schemas each pod keeps laid out ahead, so that a new shared clinic takes one instead of waiting for its migrations | `8` |
//! | `POD_POOL_MAX` | shared tier: connections one pod may hold at once, all its clinics together | `20` |
//! | `PROVISION_FROM_TEMPLATE` | create clinic databases by copying the migrated template database | `true` |
//! | `REFRESH_FAMILY_MAX_DAYS` | a login's refresh tokens stop refreshing this many days after the login, however often rotated | `30` |
//! | `METRICS_TOKEN` | when set, `/metrics` requires `Authorization: Bearer <token>` (at least 16 characters) | unset: `/metrics` is open |
//! | `TRUSTED_PROXIES` | `serve`: comma-separated CIDR blocks of proxies whose `X-Forwarded-For` names the client | none |
//! | `REQUEST_TIMEOUT_MS` | `serve`: a request still running after this answers 503 | `30000` |
//! | `STATEMENT_TIMEOUT_MS` | `serve`: a central or clinic statement running longer is cancelled (503) | `15000` |
//! | `MAX_CONCURRENT_HASHES` | passwords hashed or checked at once (about 19 MiB each); more wait up to 2 s, then 503 | 2 × CPUs |
//! | `REGISTRATION` | `serve`: `open` (anyone may register a clinic) or `closed` (403 `registration_closed`) | `open` |
//! | `REGISTRATIONS_PER_ADDRESS_PER_HOUR` | `serve`: registrations admitted from one client address in any hour (429 beyond) | `5` |
//! | `REGISTRATIONS_PER_HOUR` | `serve`: registrations admitted from all addresses together in any hour (429 beyond) | `100` |
//! | `LOGIN_ATTEMPTS_PER_ACCOUNT` | `serve`: login attempts of one email whose password is checked in any window (429 beyond) | `5` |
//! | `LOGIN_ATTEMPTS_PER_ADDRESS` | `serve`: login attempts from one client address whose password is checked in any window (429 beyond) | `20` |
//! | `LOGIN_WINDOW_SECS` | `serve`: the login throttling window: a counted attempt holds its place this long | `900` |
//!
//! The connection budget: a PostgreSQL server with its default
//! `max_connections = 100` keeps 3 slots for superusers, leaving 97. One
//! instance needs up to 16 central and 4 admin connections, and each
//! provisioning in progress 2 more (8 at the default concurrency): 97 - 28 =
//! 69. The default budget of 60 leaves 9 for operators (psql, backups).
//! Several instances on one server share it: their budgets must add up.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use crate::central::login_failures::LoginLimits;
use crate::crypto::{BearerToken, JwtSecret, Keyring};
use crate::http::proxies::TrustedProxies;
use crate::master_keys::MasterKeys;
use crate::tenancy::ddl::ROLE_CONNECTION_LIMIT;

/// Settings shared by every command that touches the databases.
#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// Admin connection to the PostgreSQL server holding the central database.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Prefix of every database and role name.
    #[arg(long, env = "DB_PREFIX", default_value = "medicalpro")]
    pub db_prefix: String,
    /// HMAC key for access tokens.
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// Base64 of 32 bytes; encrypts clinic database passwords.
    #[arg(long, env = "MASTER_KEY", hide_env_values = true)]
    pub master_key: Option<String>,
    /// The master key being rotated out, tried when MASTER_KEY fails.
    #[arg(long, env = "MASTER_KEY_PREVIOUS", hide_env_values = true)]
    pub master_key_previous: Option<String>,
    /// Embedded cluster and generated keys.
    #[arg(long, env = "DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Maximum connections of one clinic's pool.
    #[arg(long, env = "CLINIC_POOL_MAX", default_value_t = 5)]
    pub clinic_pool_max: u32,
    /// Seconds after which an idle clinic connection is closed.
    #[arg(long, env = "CLINIC_POOL_IDLE_SECS", default_value_t = 60)]
    pub clinic_pool_idle_secs: u64,
    /// Clinic connections this instance may hold, all clinics together.
    #[arg(long, env = "MAX_CLINIC_CONNECTIONS", default_value_t = 60)]
    pub max_clinic_connections: u32,
    /// Milliseconds a request waits for a clinic connection before a 503.
    #[arg(long, env = "CLINIC_CHECKOUT_TIMEOUT_MS", default_value_t = 3000)]
    pub clinic_checkout_timeout_ms: u64,
    /// Clinics provisioned at once.
    #[arg(long, env = "PROVISION_CONCURRENCY", default_value_t = 4)]
    pub provision_concurrency: u32,
    /// The isolation tier of new clinics.
    #[arg(long, env = "DEFAULT_TIER", default_value = "dedicated")]
    pub default_tier: Tier,
    /// Shared tier: clinics one pod database holds.
    #[arg(long, env = "POD_MAX_CLINICS", default_value_t = 500)]
    pub pod_max_clinics: u32,
    /// Shared tier: clinic schemas each pod keeps laid out ahead.
    #[arg(long, env = "POD_SPARE_SCHEMAS", default_value_t = 8)]
    pub pod_spare_schemas: u32,
    /// Shared tier: connections one pod may hold at once.
    #[arg(long, env = "POD_POOL_MAX", default_value_t = 20)]
    pub pod_pool_max: u32,
    /// Copy new clinic databases from the migrated template database.
    #[arg(long, env = "PROVISION_FROM_TEMPLATE", default_value_t = true, action = clap::ArgAction::Set)]
    pub provision_from_template: bool,
    /// Days after a login beyond which its refresh tokens no longer refresh.
    #[arg(long, env = "REFRESH_FAMILY_MAX_DAYS", default_value_t = 30)]
    pub refresh_family_max_days: u32,
    /// Bearer token required by /metrics; unset leaves /metrics open.
    #[arg(long, env = "METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
    /// Passwords hashed or checked at once; default two per CPU.
    #[arg(long, env = "MAX_CONCURRENT_HASHES")]
    pub max_concurrent_hashes: Option<usize>,
}

/// Settings of `medicalpro serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub db: DatabaseArgs,
    /// HTTP listen address.
    #[arg(long, env = "LISTEN_ADDR", default_value = "127.0.0.1:8080")]
    pub listen_addr: SocketAddr,
    /// Comma-separated CIDR blocks of proxies whose X-Forwarded-For is believed.
    #[arg(long, env = "TRUSTED_PROXIES", default_value = "")]
    pub trusted_proxies: String,
    /// Milliseconds after which a request still running answers 503.
    #[arg(long, env = "REQUEST_TIMEOUT_MS", default_value_t = 30_000)]
    pub request_timeout_ms: u64,
    /// Milliseconds after which a central or clinic statement is cancelled.
    #[arg(long, env = "STATEMENT_TIMEOUT_MS", default_value_t = 15_000)]
    pub statement_timeout_ms: u64,
    /// Whether anyone may register a clinic (POST /auth/register).
    #[arg(long, env = "REGISTRATION", value_enum, default_value_t = Registration::Open)]
    pub registration: Registration,
    /// Registrations admitted from one client address in any hour.
    #[arg(long, env = "REGISTRATIONS_PER_ADDRESS_PER_HOUR", default_value_t = 5)]
    pub registrations_per_address_per_hour: u32,
    /// Registrations admitted from all client addresses together in any hour.
    #[arg(long, env = "REGISTRATIONS_PER_HOUR", default_value_t = 100)]
    pub registrations_per_hour: u32,
    /// Login attempts of one email whose password is checked in any window.
    #[arg(long, env = "LOGIN_ATTEMPTS_PER_ACCOUNT", default_value_t = 5)]
    pub login_attempts_per_account: u32,
    /// Login attempts from one client address whose password is checked in any window.
    #[arg(long, env = "LOGIN_ATTEMPTS_PER_ADDRESS", default_value_t = 20)]
    pub login_attempts_per_address: u32,
    /// Seconds a counted login attempt holds its place (the throttling window).
    #[arg(long, env = "LOGIN_WINDOW_SECS", default_value_t = 900)]
    pub login_window_secs: u64,
}

/// Who may register a clinic through `POST /auth/register`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Registration {
    /// Anyone, within the registration rate limits.
    Open,
    /// No one: 403 `registration_closed`; clinics are made with
    /// `medicalpro clinic create`.
    Closed,
}

/// `REGISTRATION` and its rate limits (see `central::registrations`).
#[derive(Debug, Clone, Copy)]
pub struct RegistrationSettings {
    pub registration: Registration,
    /// Registrations admitted from one client address in any hour.
    pub per_address_per_hour: u32,
    /// Registrations admitted from every address together in any hour.
    pub per_hour: u32,
}

impl Default for RegistrationSettings {
    fn default() -> Self {
        Self {
            registration: Registration::Open,
            per_address_per_hour: 5,
            per_hour: 100,
        }
    }
}

impl ServeArgs {
    pub fn serve_settings(&self) -> Result<ServeSettings, ConfigError> {
        let trusted_proxies = TrustedProxies::parse(&self.trusted_proxies)
            .map_err(|problem| ConfigError::new("TRUSTED_PROXIES", problem))?;
        if !(100..=3_600_000).contains(&self.request_timeout_ms) {
            return Err(ConfigError::new(
                "REQUEST_TIMEOUT_MS",
                "must be between 100 and 3600000",
            ));
        }
        if !(10..=3_600_000).contains(&self.statement_timeout_ms) {
            return Err(ConfigError::new(
                "STATEMENT_TIMEOUT_MS",
                "must be between 10 and 3600000",
            ));
        }
        for (setting, value) in [
            (
                "REGISTRATIONS_PER_ADDRESS_PER_HOUR",
                self.registrations_per_address_per_hour,
            ),
            ("REGISTRATIONS_PER_HOUR", self.registrations_per_hour),
        ] {
            if !(1..=1_000_000).contains(&value) {
                return Err(ConfigError::new(setting, "must be between 1 and 1000000"));
            }
        }
        for (setting, value) in [
            (
                "LOGIN_ATTEMPTS_PER_ACCOUNT",
                self.login_attempts_per_account,
            ),
            (
                "LOGIN_ATTEMPTS_PER_ADDRESS",
                self.login_attempts_per_address,
            ),
        ] {
            if !(1..=10_000).contains(&value) {
                return Err(ConfigError::new(setting, "must be between 1 and 10000"));
            }
        }
        if !(1..=86_400).contains(&self.login_window_secs) {
            return Err(ConfigError::new(
                "LOGIN_WINDOW_SECS",
                "must be between 1 and 86400",
            ));
        }
        Ok(ServeSettings {
            trusted_proxies,
            request_timeout: Duration::from_millis(self.request_timeout_ms),
            statement_timeout: Duration::from_millis(self.statement_timeout_ms),
            registration: RegistrationSettings {
                registration: self.registration,
                per_address_per_hour: self.registrations_per_address_per_hour,
                per_hour: self.registrations_per_hour,
            },
            login: LoginLimits {
                per_account: i64::from(self.login_attempts_per_account),
                per_address: i64::from(self.login_attempts_per_address),
                window: Duration::from_secs(self.login_window_secs),
            },
        })
    }
}

/// A configuration error: names the setting and says what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("{setting} {problem}")]
pub struct ConfigError {
    pub setting: &'static str,
    pub problem: String,
}

impl ConfigError {
    pub fn new(setting: &'static str, problem: impl Into<String>) -> Self {
        Self {
            setting,
            problem: problem.into(),
        }
    }
}

/// Checked settings, ready to use. Secrets are typed so they never print.
#[derive(Debug, Clone)]
pub struct Settings {
    pub admin_url: String,
    pub prefix: DbPrefix,
    pub jwt_secret: JwtSecret,
    /// The master keys (`MASTER_KEY` and `MASTER_KEY_PREVIOUS`, or the
    /// embedded key files), shared by every user of these settings.
    pub keys: Arc<MasterKeys>,
    pub pool: PoolSettings,
    pub provisioning: ProvisioningSettings,
    /// Days after a login beyond which its refresh-token family no longer
    /// refreshes, however often rotated (`REFRESH_FAMILY_MAX_DAYS`).
    pub refresh_family_max_days: i32,
    /// The bearer token `/metrics` requires; `None` leaves it open.
    pub metrics_token: Option<BearerToken>,
    pub serving: ServeSettings,
    /// Passwords hashed or checked at once (see `auth::password::Hasher`).
    pub max_concurrent_hashes: usize,
}

impl Settings {
    /// The keys held right now (see [`MasterKeys::keyring`]).
    pub fn keyring(&self) -> Keyring {
        self.keys.keyring()
    }
}

/// Sizing of the clinic connections (see `tenancy::pools`).
#[derive(Debug, Clone, Copy)]
pub struct PoolSettings {
    /// Connections one clinic may hold at once.
    pub per_clinic_max: u32,
    /// Connections one pod may hold at once (shared tier).
    pub per_pod_max: u32,
    /// An idle connection is closed after this.
    pub idle_timeout: Duration,
    /// Connections all clinics together may hold (the budget).
    pub max_connections: u32,
    /// How long a request waits for a connection before a 503.
    pub checkout_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            per_clinic_max: 5,
            per_pod_max: 20,
            idle_timeout: Duration::from_secs(60),
            max_connections: 60,
            checkout_timeout: Duration::from_secs(3),
        }
    }
}

/// How the server bounds and attributes requests (`serve` only; other
/// commands keep the defaults).
#[derive(Debug, Clone)]
pub struct ServeSettings {
    /// Proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: TrustedProxies,
    /// A request still running after this answers 503.
    pub request_timeout: Duration,
    /// A statement on a central or clinic connection running longer is
    /// cancelled by PostgreSQL (and the request answers 503).
    pub statement_timeout: Duration,
    /// Whether and how often clinics may register.
    pub registration: RegistrationSettings,
    /// How many login attempts are checked, in what window.
    pub login: LoginLimits,
}

impl Default for ServeSettings {
    fn default() -> Self {
        Self {
            trusted_proxies: TrustedProxies::default(),
            request_timeout: Duration::from_secs(30),
            statement_timeout: Duration::from_secs(15),
            registration: RegistrationSettings::default(),
            login: LoginLimits::default(),
        }
    }
}

/// How clinics are provisioned (see `tenancy::provisioning`).
#[derive(Debug, Clone, Copy)]
pub struct ProvisioningSettings {
    /// Clinics provisioned at once.
    pub concurrency: u32,
    /// Copy new clinic databases from the template database.
    pub from_template: bool,
    /// The tier of new clinics.
    pub default_tier: Tier,
    /// Clinics one pod holds (shared tier).
    pub pod_max_clinics: u32,
    /// Schemas each pod keeps laid out ahead (shared tier).
    pub pod_spare_schemas: u32,
}

/// How a clinic is isolated (see the README's threat model).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// A database and login role of its own.
    Dedicated,
    /// A schema and serving role of its own in a pod database, reached
    /// through the pod's shared connections.
    Shared,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dedicated => "dedicated",
            Self::Shared => "shared",
        }
    }
}

impl Default for ProvisioningSettings {
    fn default() -> Self {
        Self {
            concurrency: 4,
            from_template: true,
            default_tier: Tier::Dedicated,
            pod_max_clinics: 500,
            pod_spare_schemas: 8,
        }
    }
}

impl DatabaseArgs {
    pub fn pool_settings(&self) -> Result<PoolSettings, ConfigError> {
        // More would only meet the role's own connection limit, as errors.
        if !(1..=ROLE_CONNECTION_LIMIT).contains(&self.clinic_pool_max) {
            return Err(ConfigError::new(
                "CLINIC_POOL_MAX",
                format!("must be between 1 and {ROLE_CONNECTION_LIMIT} (the clinic role's connection limit)"),
            ));
        }
        if !(1..=10_000).contains(&self.max_clinic_connections) {
            return Err(ConfigError::new(
                "MAX_CLINIC_CONNECTIONS",
                "must be between 1 and 10000",
            ));
        }
        if !(10..=60_000).contains(&self.clinic_checkout_timeout_ms) {
            return Err(ConfigError::new(
                "CLINIC_CHECKOUT_TIMEOUT_MS",
                "must be between 10 and 60000",
            ));
        }
        if !(1..=1000).contains(&self.pod_pool_max) {
            return Err(ConfigError::new(
                "POD_POOL_MAX",
                "must be between 1 and 1000",
            ));
        }
        Ok(PoolSettings {
            per_clinic_max: self.clinic_pool_max,
            per_pod_max: self.pod_pool_max,
            idle_timeout: Duration::from_secs(self.clinic_pool_idle_secs.max(1)),
            max_connections: self.max_clinic_connections,
            checkout_timeout: Duration::from_millis(self.clinic_checkout_timeout_ms),
        })
    }

    pub fn refresh_family_max_days(&self) -> Result<i32, ConfigError> {
        match i32::try_from(self.refresh_family_max_days) {
            Ok(days @ 1..=3650) => Ok(days),
            _ => Err(ConfigError::new(
                "REFRESH_FAMILY_MAX_DAYS",
                "must be between 1 and 3650",
            )),
        }
    }

    pub fn metrics_token(&self) -> Result<Option<BearerToken>, ConfigError> {
        self.metrics_token
            .as_deref()
            .map(|token| BearerToken::parse(token, "METRICS_TOKEN"))
            .transpose()
    }

    pub fn provisioning_settings(&self) -> Result<ProvisioningSettings, ConfigError> {
        if !(1..=32).contains(&self.provision_concurrency) {
            return Err(ConfigError::new(
                "PROVISION_CONCURRENCY",
                "must be between 1 and 32",
            ));
        }
        if !(1..=10_000).contains(&self.pod_max_clinics) {
            return Err(ConfigError::new(
                "POD_MAX_CLINICS",
                "must be between 1 and 10000",
            ));
        }
        Ok(ProvisioningSettings {
            concurrency: self.provision_concurrency,
            from_template: self.provision_from_template,
            default_tier: self.default_tier,
            pod_max_clinics: self.pod_max_clinics,
            pod_spare_schemas: self.pod_spare_schemas.min(1000),
        })
    }
}

impl DatabaseArgs {
    pub fn max_concurrent_hashes(&self) -> Result<usize, ConfigError> {
        match self.max_concurrent_hashes {
            None => Ok(crate::auth::password::default_max_concurrent()),
            Some(n @ 1..=256) => Ok(n),
            Some(_) => Err(ConfigError::new(
                "MAX_CONCURRENT_HASHES",
                "must be between 1 and 256 (each hash holds about 19 MiB)",
            )),
        }
    }
}

/// The prefix of every database and role name: a lower-case identifier short
/// enough that `<prefix>_clinic_<uuid>` fits PostgreSQL's 63-byte names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbPrefix(String);

impl DbPrefix {
    pub const MAX_LEN: usize = 19;

    pub fn parse(raw: &str) -> Result<Self, ConfigError> {
        let ok = !raw.is_empty()
            && raw.len() <= Self::MAX_LEN
            && raw.starts_with(|c: char| c.is_ascii_lowercase())
            && raw
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(ConfigError::new(
                "DB_PREFIX",
                format!(
                    "must be 1 to {} characters of a-z, 0-9 and _, starting with a letter",
                    Self::MAX_LEN
                ),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn central_database(&self) -> String {
        format!("{}_central", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_accepts_identifiers_and_refuses_the_rest() {
        assert!(DbPrefix::parse("medicalpro").is_ok());
        assert!(DbPrefix::parse("t_0af3").is_ok());
        for bad in ["", "1abc", "Abc", "a-b", "a;drop", "abcdefghijabcdefghij"] {
            assert!(DbPrefix::parse(bad).is_err(), "{bad}");
        }
    }

    fn serve(flags: &[&str]) -> ServeArgs {
        use clap::Parser;
        let argv = ["medicalpro", "serve"].iter().chain(flags);
        match crate::cli::Cli::try_parse_from(argv)
            .expect("arguments")
            .command
        {
            crate::cli::Command::Serve(args) => args,
            _ => unreachable!("parsed as serve"),
        }
    }

    fn serve_args(flags: &[&str]) -> DatabaseArgs {
        serve(flags).db
    }

    #[test]
    fn serve_settings_default_as_documented_and_refuse_bad_values_by_name() {
        let settings = serve(&[]).serve_settings().unwrap();
        let defaults = ServeSettings::default();
        assert_eq!(
            (settings.request_timeout, settings.statement_timeout),
            (Duration::from_secs(30), Duration::from_secs(15))
        );
        assert_eq!(
            (settings.request_timeout, settings.statement_timeout),
            (defaults.request_timeout, defaults.statement_timeout)
        );
        assert_eq!(settings.trusted_proxies, TrustedProxies::default());
        let registration = (
            settings.registration.registration,
            settings.registration.per_address_per_hour,
            settings.registration.per_hour,
        );
        assert_eq!(registration, (Registration::Open, 5, 100));
        assert_eq!(
            registration,
            (
                defaults.registration.registration,
                defaults.registration.per_address_per_hour,
                defaults.registration.per_hour
            )
        );
        assert_eq!(settings.login, defaults.login);
        assert_eq!(
            (
                settings.login.per_account,
                settings.login.per_address,
                settings.login.window
            ),
            (5, 20, Duration::from_secs(900))
        );
        let closed = serve(&["--registration", "closed"])
            .serve_settings()
            .unwrap();
        assert_eq!(closed.registration.registration, Registration::Closed);
        let trusted = serve(&["--trusted-proxies", "10.0.0.0/8, fd00::/8"])
            .serve_settings()
            .unwrap();
        assert_eq!(trusted.trusted_proxies.to_string(), "10.0.0.0/8,fd00::/8");
        for (flag, value, setting) in [
            (
                "--trusted-proxies",
                "10.0.0.0/8,nonsense",
                "TRUSTED_PROXIES",
            ),
            ("--trusted-proxies", "10.0.0.0/40", "TRUSTED_PROXIES"),
            ("--request-timeout-ms", "0", "REQUEST_TIMEOUT_MS"),
            ("--statement-timeout-ms", "0", "STATEMENT_TIMEOUT_MS"),
            (
                "--registrations-per-address-per-hour",
                "0",
                "REGISTRATIONS_PER_ADDRESS_PER_HOUR",
            ),
            ("--registrations-per-hour", "0", "REGISTRATIONS_PER_HOUR"),
            (
                "--login-attempts-per-account",
                "0",
                "LOGIN_ATTEMPTS_PER_ACCOUNT",
            ),
            (
                "--login-attempts-per-address",
                "0",
                "LOGIN_ATTEMPTS_PER_ADDRESS",
            ),
            ("--login-window-secs", "0", "LOGIN_WINDOW_SECS"),
            ("--login-window-secs", "86401", "LOGIN_WINDOW_SECS"),
        ] {
            let error = serve(&[flag, value]).serve_settings().unwrap_err();
            assert_eq!(error.setting, setting);
        }
    }

    #[test]
    fn connection_and_provisioning_defaults_match_the_documentation() {
        let args = serve_args(&[]);
        let pool = args.pool_settings().unwrap();
        let defaults = PoolSettings::default();
        assert_eq!(
            (
                pool.per_clinic_max,
                pool.max_connections,
                pool.checkout_timeout,
                pool.idle_timeout
            ),
            (5, 60, Duration::from_secs(3), Duration::from_secs(60))
        );
        assert_eq!(
            (
                pool.per_clinic_max,
                pool.max_connections,
                pool.checkout_timeout
            ),
            (
                defaults.per_clinic_max,
                defaults.max_connections,
                defaults.checkout_timeout
            )
        );
        let provisioning = args.provisioning_settings().unwrap();
        assert_eq!(
            (provisioning.concurrency, provisioning.from_template),
            (4, true)
        );
        assert_eq!(args.refresh_family_max_days().unwrap(), 30);
        assert!(args.metrics_token().unwrap().is_none());
        let cpus = std::thread::available_parallelism().unwrap().get();
        assert_eq!(args.max_concurrent_hashes().unwrap(), 2 * cpus);
    }

    #[test]
    fn out_of_range_connection_settings_are_refused_by_name() {
        for (flag, value, setting) in [
            ("--max-clinic-connections", "0", "MAX_CLINIC_CONNECTIONS"),
            (
                "--clinic-checkout-timeout-ms",
                "5",
                "CLINIC_CHECKOUT_TIMEOUT_MS",
            ),
            ("--clinic-pool-max", "0", "CLINIC_POOL_MAX"),
            ("--clinic-pool-max", "21", "CLINIC_POOL_MAX"),
        ] {
            let error = serve_args(&[flag, value]).pool_settings().unwrap_err();
            assert_eq!(error.setting, setting);
        }
        let error = serve_args(&["--provision-concurrency", "0"])
            .provisioning_settings()
            .unwrap_err();
        assert_eq!(error.setting, "PROVISION_CONCURRENCY");
        let error = serve_args(&["--refresh-family-max-days", "0"])
            .refresh_family_max_days()
            .unwrap_err();
        assert_eq!(error.setting, "REFRESH_FAMILY_MAX_DAYS");
        let error = serve_args(&["--metrics-token", "short"])
            .metrics_token()
            .unwrap_err();
        assert_eq!(error.setting, "METRICS_TOKEN");
        let error = serve_args(&["--max-concurrent-hashes", "0"])
            .max_concurrent_hashes()
            .unwrap_err();
        assert_eq!(error.setting, "MAX_CONCURRENT_HASHES");
        assert_eq!(
            serve_args(&["--max-concurrent-hashes", "3"])
                .max_concurrent_hashes()
                .unwrap(),
            3
        );
        let off = serve_args(&["--provision-from-template", "false"]);
        assert!(!off.provisioning_settings().unwrap().from_template);
    }

    #[test]
    fn central_database_name_uses_the_prefix() {
        assert_eq!(
            DbPrefix::parse("mp").unwrap().central_database(),
            "mp_central"
        );
    }
}
