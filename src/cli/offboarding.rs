//! `medicalpro clinic export`, `clinic close` and `clinic destroy-closed`.

use std::path::PathBuf;
use std::process::ExitCode;

use uuid::Uuid;

use super::clinic::ListArgs;
use super::output::print_json;
use super::{status, with_fleet, Connect};
use crate::config::DatabaseArgs;
use crate::ops::offboarding::{self, DEFAULT_CLOSE_DAYS};
use crate::tenancy::naming::ClinicId;

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub db: DatabaseArgs,
    /// The clinic's id.
    pub id: Uuid,
    /// A new (or empty) directory to write into.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct CloseArgs {
    #[command(flatten)]
    pub db: DatabaseArgs,
    /// The clinic's id.
    pub id: Uuid,
    /// A new (or empty) directory for the export.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Days before the clinic's database and roles are destroyed.
    #[arg(long, default_value_t = DEFAULT_CLOSE_DAYS)]
    pub delay_days: u32,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

pub async fn export(args: ExportArgs) -> anyhow::Result<ExitCode> {
    let (id, out) = (ClinicId(args.id), args.out.clone());
    let exported = with_fleet(&args.db, Connect::Attach, |fleet| async move {
        offboarding::export_clinic(&fleet, id, &out).await
    })
    .await?;
    if args.json {
        print_json(&exported)?;
    } else {
        let rows: u64 = exported.files.iter().map(|f| f.rows).sum();
        println!(
            "clinic {id} exported into {}: {} files, {rows} rows, in {:.1} s",
            exported.dir.display(),
            exported.files.len(),
            exported.seconds
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn close(args: CloseArgs) -> anyhow::Result<ExitCode> {
    let (id, out, days) = (ClinicId(args.id), args.out.clone(), args.delay_days);
    let closed = with_fleet(&args.db, Connect::Attach, |fleet| async move {
        offboarding::close_clinic(&fleet, id, &out, days).await
    })
    .await?;
    if args.json {
        print_json(&closed)?;
    } else {
        println!(
            "clinic {id} suspended and exported into {}; its database and roles will be destroyed after {} (`medicalpro clinic activate {id}` cancels)",
            closed.exported.dir.display(),
            closed.destroy_after.format("%Y-%m-%d %H:%M UTC")
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn destroy_closed(args: ListArgs) -> anyhow::Result<ExitCode> {
    let destroyed = with_fleet(&args.db, Connect::Attach, |fleet| async move {
        offboarding::destroy_due(&fleet).await
    })
    .await?;
    let failed = destroyed.iter().filter(|d| d.error.is_some()).count();
    if args.json {
        print_json(&destroyed)?;
    } else {
        for clinic in &destroyed {
            match &clinic.error {
                None => println!("{} destroyed", clinic.clinic_id),
                Some(error) => println!("{} FAILED: {error}", clinic.clinic_id),
            }
        }
        println!(
            "{} closed clinic(s) destroyed, {failed} failed",
            destroyed.len() - failed
        );
    }
    Ok(status(failed == 0))
}
