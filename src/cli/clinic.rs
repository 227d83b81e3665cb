//! `medicalpro clinic ...`: create, list, show, update, suspend, activate,
//! delete (export, close and destroy-closed are in [`offboarding`]).

use std::process::ExitCode;

use clap::Subcommand;
use serde_json::json;
use uuid::Uuid;

use super::credentials::{hand_out, read_password, LinkArgs};
use super::offboarding;
use super::output::{human_bytes, print_json, Table};
use super::{with_fleet, Connect};
use crate::app::{self, Environment};
use crate::auth::credentials::unusable_hash;
use crate::auth::password;
use crate::central::password_links::Purpose;
use crate::config::{DatabaseArgs, Tier};
use crate::ops::{accounts, delete};
use crate::platform::{self, ChangedBy};
use crate::tenancy::naming::ClinicId;
use crate::tenancy::provisioning::{FirstAdmin, NewClinic, ProvisionError};
use crate::validation::{self as v, FieldErrors};

#[derive(Debug, Subcommand)]
pub enum ClinicCommand {
    /// Provision a clinic (database, role, schema) and print its id;
    /// --admin-email also makes its first admin.
    Create(Box<CreateClinicArgs>),
    /// List every clinic: status, database, server, schema version, size.
    List(ListArgs),
    /// Show one clinic in detail.
    Show(ClinicArgs),
    /// Rename a clinic and/or change its email (recorded in the platform audit).
    Update(UpdateClinicArgs),
    /// Suspend a clinic: its staff get 403 clinic_inactive until reactivated.
    Suspend(ClinicArgs),
    /// Reactivate a suspended clinic.
    Activate(ClinicArgs),
    /// Delete a clinic that never held patient data: drops its database and
    /// roles, deletes its staff accounts, keeps a tombstone without personal
    /// data. Refused for a clinic with patient data.
    Delete(ClinicArgs),
    /// Write all of a clinic's data in open formats (JSON per table, staff,
    /// erasure ledger) into a new directory.
    Export(offboarding::ExportArgs),
    /// Suspend a clinic, export it, and destroy its database and roles
    /// after a delay (reactivating it cancels the destruction).
    Close(offboarding::CloseArgs),
    /// Destroy the closed clinics whose delay has passed (`serve` also does
    /// it every hour).
    DestroyClosed(ListArgs),
    /// Move a clinic's database to another server (logical replication,
    /// a write freeze of seconds); run again to finish or roll back an
    /// interrupted move.
    Move(super::server::MoveArgs),
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub db: DatabaseArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct ClinicArgs {
    #[command(flatten)]
    pub db: DatabaseArgs,
    /// The clinic's id.
    pub id: Uuid,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(command: ClinicCommand) -> anyhow::Result<ExitCode> {
    match command {
        ClinicCommand::Create(args) => create_clinic(*args).await,
        ClinicCommand::List(args) => list(args).await,
        ClinicCommand::Show(args) => show(args).await,
        ClinicCommand::Update(args) => update(args).await,
        ClinicCommand::Suspend(args) => set_active(args, false).await,
        ClinicCommand::Activate(args) => set_active(args, true).await,
        ClinicCommand::Delete(args) => delete(args).await,
        ClinicCommand::Export(args) => offboarding::export(args).await,
        ClinicCommand::Close(args) => offboarding::close(args).await,
        ClinicCommand::DestroyClosed(args) => offboarding::destroy_closed(args).await,
        ClinicCommand::Move(args) => super::server::move_clinic(args).await,
    }
}

async fn delete(args: ClinicArgs) -> anyhow::Result<ExitCode> {
    let id = ClinicId(args.id);
    let deleted = with_fleet(&args.db, Connect::Attach, |fleet| async move {
        Ok(delete::delete_clinic(&fleet, id).await?)
    })
    .await?;
    if args.json {
        print_json(&deleted)?;
    } else {
        println!(
            "clinic {id} deleted: database {} and its roles dropped, {} staff account(s) deleted",
            deleted.database, deleted.staff_accounts
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn list(args: ListArgs) -> anyhow::Result<ExitCode> {
    let clinics = with_fleet(&args.db, Connect::Attach, |fleet| async move {
        let mut clinics = platform::list_clinics(&fleet.databases.central, None, None, 0)
            .await?
            .0;
        let sizes = crate::tenancy::sizes::read(&fleet.databases).await?;
        for clinic in &mut clinics {
            clinic.size_bytes = sizes.get(&clinic.id).map(|size| size.bytes);
        }
        Ok(clinics)
    })
    .await?;
    if args.json {
        print_json(&clinics)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = Table::new(&[
        "ID", "NAME", "STATUS", "TIER", "DATABASE", "SERVER", "SCHEMA", "SIZE", "CREATED",
    ]);
    for clinic in &clinics {
        table.row(vec![
            clinic.id.to_string(),
            clinic.name.clone(),
            clinic.status.clone(),
            clinic.tier.clone(),
            clinic.database.clone().unwrap_or_else(|| "-".into()),
            clinic.server.clone().unwrap_or_else(|| "-".into()),
            clinic.schema_version.to_string(),
            human_bytes(clinic.size_bytes),
            clinic.created_at.format("%Y-%m-%d %H:%M").to_string(),
        ]);
    }
    table.print();
    eprintln!("{} clinic(s)", clinics.len());
    Ok(ExitCode::SUCCESS)
}

async fn show(args: ClinicArgs) -> anyhow::Result<ExitCode> {
    let id = ClinicId(args.id);
    let details = with_fleet(&args.db, Connect::Attach, |fleet| async move {
        Ok(platform::show_clinic(&fleet.databases.central, id).await?)
    })
    .await?
    .ok_or_else(|| anyhow::anyhow!("no clinic has the id {id}"))?;
    if args.json {
        print_json(&details)?;
        return Ok(ExitCode::SUCCESS);
    }
    let s = &details.summary;
    let or_dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    let mut table = Table::new(&["FIELD", "VALUE"]);
    for (field, value) in [
        ("id", s.id.to_string()),
        ("name", s.name.clone()),
        ("status", s.status.clone()),
        ("email", s.email.clone()),
        ("phone", or_dash(details.phone.clone())),
        ("country", details.country.clone()),
        ("subscription", details.subscription_status.clone()),
        (
            "subscription expiry",
            or_dash(details.subscription_expiry.map(|t| t.to_rfc3339())),
        ),
        ("staff accounts", details.staff_accounts.to_string()),
        ("database", or_dash(s.database.clone())),
        ("role", or_dash(details.db_user.clone())),
        ("server", or_dash(s.server.clone())),
        (
            "host",
            or_dash(
                details
                    .db_host
                    .clone()
                    .map(|h| format!("{h}:{}", details.db_port.unwrap_or(5432))),
            ),
        ),
        ("schema version", s.schema_version.to_string()),
        ("size", human_bytes(s.size_bytes)),
        ("created", s.created_at.to_rfc3339()),
        ("updated", details.updated_at.to_rfc3339()),
    ] {
        table.row(vec![field.to_owned(), value]);
    }
    table.print();
    Ok(ExitCode::SUCCESS)
}

async fn set_active(args: ClinicArgs, active: bool) -> anyhow::Result<ExitCode> {
    let id = ClinicId(args.id);
    with_fleet(&args.db, Connect::Attach, |fleet| async move {
        let central = &fleet.databases.central;
        if !platform::set_clinic_active(central, id, active, ChangedBy::CommandLine).await? {
            anyhow::bail!("no clinic has the id {id}");
        }
        Ok(())
    })
    .await?;
    let status = if active { "active" } else { "suspended" };
    if args.json {
        print_json(&json!({"id": id, "status": status}))?;
    } else {
        println!("clinic {id} is {status}");
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, clap::Args)]
pub struct CreateClinicArgs {
    #[command(flatten)]
    pub db: DatabaseArgs,
    /// Clinic name.
    #[arg(long)]
    pub name: String,
    /// Clinic contact email.
    #[arg(long)]
    pub email: String,
    #[arg(long)]
    pub phone: Option<String>,
    /// ISO 3166-1 alpha-2 country code.
    #[arg(long, default_value = "FR")]
    pub country: String,
    /// Its isolation tier (default: `DEFAULT_TIER`).
    #[arg(long)]
    pub tier: Option<Tier>,
    /// Create the clinic's first admin with this login: with
    /// --admin-password-stdin its password, otherwise a one-time setup link
    /// printed on standard output.
    #[arg(long)]
    pub admin_email: Option<String>,
    /// Read the first admin's password from standard input (a prompt on a
    /// terminal); without --admin-email the admin's login is --email.
    #[arg(long)]
    pub admin_password_stdin: bool,
    #[command(flatten)]
    pub links: LinkArgs,
    #[arg(long, default_value = "Clinic")]
    pub admin_first_name: String,
    #[arg(long, default_value = "Admin")]
    pub admin_last_name: String,
    /// Print JSON instead of the bare id.
    #[arg(long)]
    pub json: bool,
}

async fn create_clinic(args: CreateClinicArgs) -> anyhow::Result<ExitCode> {
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
    let links = args.links.settings()?;
    let admin_email = match args.admin_email {
        Some(raw) => Some(v::email(raw).map_err(|m| anyhow::anyhow!("--admin-email {m}"))?),
        None => args.admin_password_stdin.then(|| email.clone()),
    };
    let admin = match admin_email {
        Some(admin_email) => Some(
            first_admin(
                admin_email,
                args.admin_password_stdin,
                args.admin_first_name,
                args.admin_last_name,
            )
            .await?,
        ),
        None => None,
    };
    let environment = Environment::resolve(&args.db).await?;
    let result = async {
        let state = app::build_state(&environment.settings).await?;
        let provisioner = match args.tier {
            Some(tier) => state.provisioner.clone().with_tier(tier),
            None => state.provisioner.clone(),
        };
        let provisioned = provisioner
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
        let link = match &provisioned.admin {
            Some(admin) if !args.admin_password_stdin => Some(
                accounts::issue_link(&state.databases.central, admin, Purpose::Setup, &links)
                    .await?,
            ),
            _ => None,
        };
        state.databases.close().await;
        anyhow::Ok((provisioned, link))
    }
    .await;
    environment.stop();
    let (provisioned, link) = result?;
    if args.json {
        println!(
            "{}",
            json!({"id": provisioned.clinic_id, "adminUserId": provisioned.admin.as_ref().map(|a| a.id),
                   "setupLink": link.as_ref().map(|l| &l.link),
                   "setupLinkExpiresAt": link.as_ref().map(|l| l.expires_at),
                   "provisioningMs": provisioned.elapsed_ms as u64})
        );
    } else {
        println!("{}", provisioned.clinic_id);
    }
    if provisioned.admin.is_none() {
        eprintln!(
            "the clinic has no admin account yet: `medicalpro user create --clinic {} --email E --role admin`",
            provisioned.clinic_id
        );
    }
    Ok(match &link {
        Some(link) => hand_out(link, &links, args.json).await,
        None => ExitCode::SUCCESS,
    })
}

/// The first admin: with the password read from standard input, or with
/// an unusable one until the setup link is used.
async fn first_admin(
    email: String,
    with_password: bool,
    first_name: String,
    last_name: String,
) -> anyhow::Result<FirstAdmin> {
    let password_hash = if with_password {
        let password = read_password("Password for the clinic's first admin")?;
        let password =
            v::password(password).map_err(|m| anyhow::anyhow!("the admin password {m}"))?;
        password::hash(password).await?
    } else {
        unusable_hash().await?
    };
    Ok(FirstAdmin {
        email,
        password_hash,
        first_name,
        last_name,
    })
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("change").required(true).multiple(true).args(["name", "email"])))]
pub struct UpdateClinicArgs {
    #[command(flatten)]
    pub db: DatabaseArgs,
    /// The clinic's id.
    pub id: Uuid,
    /// The new name.
    #[arg(long)]
    pub name: Option<String>,
    /// The new contact email (unique among clinics and other clinics' accounts).
    #[arg(long)]
    pub email: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

async fn update(args: UpdateClinicArgs) -> anyhow::Result<ExitCode> {
    let id = ClinicId(args.id);
    let change = platform::ClinicChange::parse(args.name, args.email).map_err(|errors| {
        let details = errors.into_details();
        anyhow::anyhow!(
            "{}",
            details
                .iter()
                .map(|d| format!("--{} {}", d.field, d.message))
                .collect::<Vec<_>>()
                .join("; ")
        )
    })?;
    let details = with_fleet(&args.db, Connect::Attach, |fleet| async move {
        let central = &fleet.databases.central;
        match platform::update_clinic(central, id, &change, ChangedBy::CommandLine).await {
            Ok(Some(details)) => Ok(details),
            Ok(None) => anyhow::bail!("no clinic has the id {id}"),
            Err(error) => Err(error.into()),
        }
    })
    .await?;
    if args.json {
        print_json(&details)?;
    } else {
        println!(
            "clinic {id}: name {}, email {}",
            details.summary.name, details.summary.email
        );
    }
    Ok(ExitCode::SUCCESS)
}
