//! `medicalpro user ...`: super admins and clinic staff accounts, one-time
//! password links, unlocking and deactivating accounts.

use std::process::ExitCode;

use clap::Subcommand;
use serde_json::json;
use uuid::Uuid;

use super::credentials::{hand_out, read_password, LinkArgs};
use super::output::{print_json, Table};
use super::{with_fleet, Connect};
use crate::auth::roles::Role;
use crate::central::password_links::Purpose;
use crate::central::users;
use crate::config::DatabaseArgs;
use crate::ops::accounts::{self, NewAccount};
use crate::platform::{self, PlatformError};
use crate::tenancy::naming::ClinicId;

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a platform `super_admin` account (password from standard input, or a prompt).
    CreateSuperAdmin(SuperAdminArgs),
    /// Create a clinic staff account: with --password-stdin its password,
    /// otherwise a one-time setup link printed on standard output.
    Create(CreateArgs),
    /// Print a one-time link that sets a new password for the account.
    ResetPassword(ResetArgs),
    /// Forgive the account's failed logins: it may log in again at once.
    Unlock(EmailArgs),
    /// List the super admins, or one clinic's accounts.
    List(ListArgs),
    /// Deactivate an account: it cannot log in, and its sessions end.
    Deactivate(EmailArgs),
    /// Reactivate a deactivated account.
    Activate(EmailArgs),
}

#[derive(Debug, clap::Args)]
pub struct SuperAdminArgs {
    #[command(flatten)]
    pub db: DatabaseArgs,
    #[arg(long)]
    pub email: String,
    /// Print JSON instead of the bare id.
    #[arg(long)]
    pub json: bool,
}

/// The roles a clinic account can have.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ClinicRole {
    Admin,
    Doctor,
    Secretary,
    Readonly,
}

impl From<ClinicRole> for Role {
    fn from(role: ClinicRole) -> Self {
        match role {
            ClinicRole::Admin => Role::Admin,
            ClinicRole::Doctor => Role::Doctor,
            ClinicRole::Secretary => Role::Secretary,
            ClinicRole::Readonly => Role::Readonly,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    #[command(flatten)]
    pub db: DatabaseArgs,
    #[command(flatten)]
    pub links: LinkArgs,
    /// The clinic's id.
    #[arg(long)]
    pub clinic: Uuid,
    #[arg(long)]
    pub email: String,
    #[arg(long, value_enum)]
    pub role: ClinicRole,
    #[arg(long, default_value = "Staff")]
    pub first_name: String,
    #[arg(long, default_value = "Member")]
    pub last_name: String,
    /// Read the password from standard input (a prompt on a terminal)
    /// instead of printing a setup link.
    #[arg(long)]
    pub password_stdin: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct ResetArgs {
    #[command(flatten)]
    pub db: DatabaseArgs,
    #[command(flatten)]
    pub links: LinkArgs,
    /// The account's email.
    pub email: String,
    /// Print JSON instead of the bare link.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct EmailArgs {
    #[command(flatten)]
    pub db: DatabaseArgs,
    /// The account's email.
    pub email: String,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
#[group(id = "whose", required = true, args = ["super_admins", "clinic"])]
pub struct ListArgs {
    #[command(flatten)]
    pub db: DatabaseArgs,
    /// The platform's super admins.
    #[arg(long)]
    pub super_admins: bool,
    /// One clinic's accounts.
    #[arg(long)]
    pub clinic: Option<Uuid>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(command: UserCommand) -> anyhow::Result<ExitCode> {
    match command {
        UserCommand::CreateSuperAdmin(args) => create_super_admin(args).await,
        UserCommand::Create(args) => create(args).await,
        UserCommand::ResetPassword(args) => reset_password(args).await,
        UserCommand::Unlock(args) => unlock(args).await,
        UserCommand::List(args) => list(args).await,
        UserCommand::Deactivate(args) => set_active(args, false).await,
        UserCommand::Activate(args) => set_active(args, true).await,
    }
}

async fn create_super_admin(args: SuperAdminArgs) -> anyhow::Result<ExitCode> {
    let password = read_password("Password for the new super admin")?;
    let email = args.email.clone();
    let user = with_fleet(&args.db, Connect::Open, |fleet| async move {
        platform::create_super_admin(&fleet.databases.central, &email, password)
            .await
            .map_err(|error| match error {
                PlatformError::Database(e) => anyhow::Error::new(e).context("central database"),
                other => anyhow::anyhow!("{other}"),
            })
    })
    .await?;
    if args.json {
        print_json(&json!({"id": user.id, "email": user.email, "role": "super_admin"}))?;
    } else {
        println!("{}", user.id);
    }
    Ok(ExitCode::SUCCESS)
}

async fn create(args: CreateArgs) -> anyhow::Result<ExitCode> {
    let links = args.links.settings()?;
    let password = if args.password_stdin {
        Some(read_password("Password for the new account")?)
    } else {
        None
    };
    let account = NewAccount {
        clinic: ClinicId(args.clinic),
        email: args.email,
        role: args.role.into(),
        first_name: args.first_name,
        last_name: args.last_name,
        password,
    };
    let settings = links.clone();
    let (user, link) = with_fleet(&args.db, Connect::Attach, |fleet| async move {
        let central = &fleet.databases.central;
        let with_link = account.password.is_none();
        let user = accounts::create_staff(central, account).await?;
        let link = match with_link {
            true => Some(accounts::issue_link(central, &user, Purpose::Setup, &settings).await?),
            false => None,
        };
        Ok((user, link))
    })
    .await?;
    if args.json {
        print_json(
            &json!({"id": user.id, "email": user.email, "role": user.role,
            "clinicId": user.company_id, "setupLink": link.as_ref().map(|l| &l.link),
            "setupLinkExpiresAt": link.as_ref().map(|l| l.expires_at)}),
        )?;
    } else {
        println!("{}", user.id);
    }
    Ok(match &link {
        Some(link) => hand_out(link, &links, args.json).await,
        None => ExitCode::SUCCESS,
    })
}

async fn reset_password(args: ResetArgs) -> anyhow::Result<ExitCode> {
    let links = args.links.settings()?;
    let settings = links.clone();
    let email = args.email.clone();
    let link = with_fleet(&args.db, Connect::Attach, |fleet| async move {
        accounts::reset_link(&fleet.databases.central, &email, &settings).await
    })
    .await?;
    if args.json {
        print_json(&link)?;
    }
    Ok(hand_out(&link, &links, args.json).await)
}

async fn unlock(args: EmailArgs) -> anyhow::Result<ExitCode> {
    let email = args.email.clone();
    let forgiven = with_fleet(&args.db, Connect::Attach, |fleet| async move {
        accounts::unlock(&fleet.databases.central, &email).await
    })
    .await?;
    if args.json {
        print_json(&json!({"email": args.email, "failuresForgiven": forgiven}))?;
    } else {
        println!(
            "{}: {forgiven} failed login(s) forgiven; it may log in again",
            args.email
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn list(args: ListArgs) -> anyhow::Result<ExitCode> {
    let clinic = args.clinic.filter(|_| !args.super_admins);
    let accounts = with_fleet(&args.db, Connect::Attach, |fleet| async move {
        Ok(users::list_accounts(&fleet.databases.central, clinic).await?)
    })
    .await?;
    if args.json {
        print_json(&accounts)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = Table::new(&["ID", "EMAIL", "ROLE", "STATUS", "LAST LOGIN", "CREATED"]);
    for account in &accounts {
        let when = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%d %H:%M").to_string();
        table.row(vec![
            account.id.to_string(),
            account.email.clone(),
            account.role.as_str().to_owned(),
            if account.is_active {
                "active"
            } else {
                "deactivated"
            }
            .to_owned(),
            account.last_login_at.map_or_else(|| "-".into(), when),
            when(account.created_at),
        ]);
    }
    table.print();
    eprintln!("{} account(s)", accounts.len());
    Ok(ExitCode::SUCCESS)
}

async fn set_active(args: EmailArgs, active: bool) -> anyhow::Result<ExitCode> {
    let email = args.email.clone();
    let changed = with_fleet(&args.db, Connect::Attach, |fleet| async move {
        accounts::set_active(&fleet.databases.central, &email, active).await
    })
    .await?;
    let status = if active { "active" } else { "deactivated" };
    if args.json {
        print_json(&json!({"email": args.email, "status": status, "changed": changed}))?;
    } else if changed {
        println!("{} is {status}", args.email);
    } else {
        println!("{} already was {status}", args.email);
    }
    Ok(ExitCode::SUCCESS)
}
