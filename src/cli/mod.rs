//! The `medicalpro` command line. Every command calls a library function
//! (`app::serve`, `ops::*`), so tests run them as the command line does.
//! Commands read the same configuration as `serve` (`DatabaseArgs`); with
//! no `DATABASE_URL` they use the embedded cluster in `DATA_DIR`, attaching
//! to it when a running server already has it up. Only `serve` and `init`
//! create that cluster and its keys: every other command, finding none,
//! fails and says where it looked.
//!
//! People get aligned tables; `--json` prints one JSON document for
//! scripts. Commands that find problems (a failed migration, a sick
//! clinic) print them and exit with status 1.

mod audit;
mod backup;
mod clinic;
mod credentials;
mod doctor;
mod init;
mod keys;
mod migrate;
mod offboarding;
mod output;
mod server;
mod user;

use std::future::Future;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::app::{self, Environment};
use crate::config::{DatabaseArgs, ServeArgs, Settings};
use crate::ops::Fleet;

#[derive(Debug, Parser)]
#[command(
    name = "medicalpro",
    version,
    about = "Multi-clinic medical practice backend: one PostgreSQL database per clinic"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server (embedded PostgreSQL cluster unless DATABASE_URL is set).
    Serve(ServeArgs),
    /// Create the embedded cluster and its keys (unless DATABASE_URL is set) and the central database, then exit.
    Init(init::InitArgs),
    /// Create, list, inspect, suspend, reactivate and delete clinics.
    #[command(subcommand)]
    Clinic(clinic::ClinicCommand),
    /// Migrate the central database, then every clinic database.
    Migrate(migrate::MigrateArgs),
    /// Back up one clinic's database, or all of them.
    Backup(backup::BackupArgs),
    /// Restore a clinic's database from a backup.
    Restore(backup::RestoreArgs),
    /// Check the configuration, the central database and every clinic database.
    Doctor(doctor::DoctorArgs),
    /// Manage the master key that seals clinic database passwords.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Check the clinics' tamper-evident audit trails.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Register, list and drain the PostgreSQL servers that hold clinic databases.
    #[command(subcommand)]
    Server(server::ServerCommand),
    /// Manage super admins and clinic staff accounts: create, reset a password, unlock, deactivate.
    #[command(subcommand)]
    User(user::UserCommand),
    /// Print the HTTP API's OpenAPI document (as served at /api/v1/openapi.json).
    Openapi,
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => app::serve(args).await.map(|()| ExitCode::SUCCESS),
        Command::Init(args) => init::run(args).await,
        Command::Openapi => {
            let (_, openapi) = crate::http::api();
            println!("{}", openapi.to_pretty_json()?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Clinic(command) => clinic::run(command).await,
        Command::Migrate(args) => migrate::run(args).await,
        Command::Backup(args) => backup::backup(args).await,
        Command::Restore(args) => backup::restore(args).await,
        Command::Doctor(args) => doctor::run(args).await,
        Command::Keys(command) => keys::run(command).await,
        Command::Audit(command) => audit::run(command).await,
        Command::User(command) => user::run(command).await,
        Command::Server(command) => server::run(command).await,
    }
}

/// Resolves the configuration (starting the existing embedded cluster if
/// needed, never creating one), runs `work`, then stops the cluster if this
/// process started it.
async fn with_settings<T, F, Fut>(db: &DatabaseArgs, work: F) -> anyhow::Result<T>
where
    F: FnOnce(Settings) -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let environment = Environment::resolve(db).await?;
    let result = work(environment.settings.clone()).await;
    environment.stop();
    result
}

/// How a command connects to the central database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Connect {
    /// Create and migrate central if needed, as `serve` does.
    Open,
    /// Use central as it is; fail if it does not exist.
    Attach,
}

/// [`with_settings`], with the fleet's connections open around `work`.
async fn with_fleet<T, F, Fut>(db: &DatabaseArgs, connect: Connect, work: F) -> anyhow::Result<T>
where
    F: FnOnce(Fleet) -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    with_settings(db, |settings| async move {
        let fleet = match connect {
            Connect::Open => Fleet::open(&settings).await?,
            Connect::Attach => Fleet::attach(&settings).await?,
        };
        let databases = fleet.databases.clone();
        let result = work(fleet).await;
        databases.close().await;
        result
    })
    .await
}

/// Exit status 1 when a command found problems it has already printed.
fn status(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn command_line_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }

    #[test]
    fn every_command_has_help() {
        fn walk(command: &clap::Command, path: &str) {
            for sub in command.get_subcommands() {
                let path = format!("{path} {}", sub.get_name());
                assert!(sub.get_about().is_some(), "`{path}` has no help text");
                walk(sub, &path);
            }
        }
        walk(&super::Cli::command(), "medicalpro");
    }
}
