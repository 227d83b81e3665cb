//! The `medicalpro` command line. Each command is a library function, so
//! tests can call it.

use std::io::Read;

use clap::{Parser, Subcommand};
use serde_json::json;

use crate::app::{self, Environment};
use crate::auth::password;
use crate::config::{DatabaseArgs, ServeArgs};
use crate::tenancy::provisioning::{FirstAdmin, NewClinic, ProvisionError};
use crate::validation::{self as v, FieldErrors};

#[derive(Debug, Parser)]
#[command(
    name = "medicalpro",
    version,
    about = "Multi-clinic medical practice backend"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server (embedded PostgreSQL cluster unless DATABASE_URL is set).
    Serve(ServeArgs),
    /// Manage clinics.
    #[command(subcommand)]
    Clinic(ClinicCommand),
}

#[derive(Debug, Subcommand)]
pub enum ClinicCommand {
    /// Provision a clinic (database, role, schema) and print its id.
    Create(CreateClinicArgs),
}

#[derive(Debug, clap::Args)]
pub struct CreateClinicArgs {
    #[command(flatten)]
    pub db: DatabaseArgs,
    /// Clinic name.
    #[arg(long)]
    pub name: String,
    /// Clinic contact email (also the first admin's login, if one is made).
    #[arg(long)]
    pub email: String,
    #[arg(long)]
    pub phone: Option<String>,
    /// ISO 3166-1 alpha-2 country code.
    #[arg(long, default_value = "FR")]
    pub country: String,
    /// Read the first admin's password from standard input and create that admin.
    #[arg(long)]
    pub admin_password_stdin: bool,
    #[arg(long, default_value = "Clinic")]
    pub admin_first_name: String,
    #[arg(long, default_value = "Admin")]
    pub admin_last_name: String,
    /// Print JSON instead of the bare id.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => app::serve(args).await,
        Command::Clinic(ClinicCommand::Create(args)) => create_clinic(args).await,
    }
}

async fn create_clinic(args: CreateClinicArgs) -> anyhow::Result<()> {
    let mut errors = FieldErrors::default();
    let name = v::required(Some(args.name), v::text(200), "--name", &mut errors);
    let email = v::required(Some(args.email), v::email, "--email", &mut errors);
    let phone = v::optional(args.phone, v::phone, "--phone", &mut errors);
    let country = v::required(Some(args.country), v::country, "--country", &mut errors);
    let (Some(name), Some(email), Some(country)) = (name, email, country) else {
        let details = errors.into_details();
        anyhow::bail!(
            "{}",
            details
                .iter()
                .map(|d| format!("{} {}", d.field, d.message))
                .collect::<Vec<_>>()
                .join("; ")
        );
    };
    let admin = if args.admin_password_stdin {
        let mut password = String::new();
        std::io::stdin().read_to_string(&mut password)?;
        let password = v::password(password.trim_end_matches(['\n', '\r']).to_owned())
            .map_err(|m| anyhow::anyhow!("the admin password {m}"))?;
        Some(FirstAdmin {
            email: email.clone(),
            password_hash: password::hash(password).await?,
            first_name: args.admin_first_name,
            last_name: args.admin_last_name,
        })
    } else {
        None
    };
    let environment = Environment::resolve(&args.db).await?;
    let result = async {
        let state = app::build_state(&environment.settings).await?;
        let provisioned = state
            .provisioner
            .provision(
                NewClinic {
                    name,
                    email,
                    phone,
                    country,
                },
                admin,
            )
            .await
            .map_err(|e| match e {
                ProvisionError::EmailTaken => {
                    anyhow::anyhow!("a clinic or account with this email already exists")
                }
                other => other.into(),
            })?;
        state.databases.close().await;
        anyhow::Ok(provisioned)
    }
    .await;
    environment.stop();
    let provisioned = result?;
    if args.json {
        println!(
            "{}",
            json!({"id": provisioned.clinic_id, "adminUserId": provisioned.admin.map(|a| a.id),
                   "provisioningMs": provisioned.elapsed_ms as u64})
        );
    } else {
        println!("{}", provisioned.clinic_id);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn command_line_definition_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
