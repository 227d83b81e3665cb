//! `medicalpro audit verify`.

use std::process::ExitCode;

use clap::Subcommand;
use uuid::Uuid;

use super::output::{print_json, Table};
use super::{status, with_fleet, Connect};
use crate::compliance::{self, Verification};
use crate::config::DatabaseArgs;
use crate::tenancy::naming::ClinicId;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Walk clinic audit chains; report the first broken link; exit 1 if any is broken.
    /// A restore made by `medicalpro restore` is reported as such: the chain
    /// continues from the head it put in place.
    Verify(VerifyArgs),
}

#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false, args = ["clinic", "all"])]
pub struct VerifyArgs {
    #[command(flatten)]
    pub db: DatabaseArgs,
    /// The clinic to verify.
    #[arg(long)]
    pub clinic: Option<Uuid>,
    /// Verify every provisioned clinic.
    #[arg(long)]
    pub all: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(command: AuditCommand) -> anyhow::Result<ExitCode> {
    let AuditCommand::Verify(args) = command;
    let only = args.clinic.map(ClinicId);
    let results: Vec<Verification> = with_fleet(&args.db, Connect::Attach, |fleet| async move {
        let clinics = match only {
            Some(id) => vec![id],
            None => compliance::all_clinics(&fleet.databases).await?,
        };
        let mut results = Vec::with_capacity(clinics.len());
        for id in clinics {
            results.push(compliance::verify_clinic(&fleet.databases, id).await?);
        }
        Ok(results)
    })
    .await?;
    let intact = results.iter().all(|r| r.broken.is_none());
    if args.json {
        print_json(&results)?;
    } else {
        let mut table = Table::new(&["CLINIC", "EVENTS", "CHAIN", "FIRST BROKEN LINK"]);
        for result in &results {
            let (chain, link) = match &result.broken {
                None => ("intact".to_owned(), "-".to_owned()),
                Some(broken) => (
                    "BROKEN".to_owned(),
                    format!("id {}: {}", broken.id, broken.reason),
                ),
            };
            table.row(vec![
                result.clinic_id.to_string(),
                result.events.to_string(),
                chain,
                link,
            ]);
        }
        table.print();
        for result in &results {
            if let Some(restore) = &result.restored {
                println!("clinic {}: {}", result.clinic_id, restore.describe());
            }
        }
    }
    Ok(status(intact))
}
