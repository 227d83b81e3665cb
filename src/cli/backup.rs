//! `medicalpro backup` and `medicalpro restore`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::ArgGroup;
use uuid::Uuid;

use super::output::{human_bytes, print_json, ProgressLine, Table};
use super::{status, with_fleet, Connect};
use crate::config::DatabaseArgs;
use crate::ops::backup;
use crate::ops::restore::{self, NewIdentity, RestoreOptions};
use crate::tenancy::naming::ClinicId;

#[derive(Debug, clap::Args)]
#[command(group(ArgGroup::new("which").required(true).args(["clinic", "all"])))]
pub struct BackupArgs {
    #[command(flatten)]
    pub db: DatabaseArgs,
    /// Back up this clinic (with --out).
    #[arg(long, requires = "out")]
    pub clinic: Option<Uuid>,
    /// The backup file (encrypted under a key derived from MASTER_KEY).
    #[arg(long, value_name = "FILE", requires = "clinic")]
    pub out: Option<PathBuf>,
    /// Back up every clinic (with --dir).
    #[arg(long, requires = "dir")]
    pub all: bool,
    /// Directory for `--all`: one `<clinic id>-<UTC time>.dump` per clinic.
    #[arg(long, value_name = "DIR", requires = "all")]
    pub dir: Option<PathBuf>,
    /// Clinics backed up at once with --all.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=32))]
    pub jobs: u16,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

pub async fn backup(args: BackupArgs) -> anyhow::Result<ExitCode> {
    if let (Some(id), Some(out)) = (args.clinic, args.out.clone()) {
        let id = ClinicId(id);
        let done = with_fleet(&args.db, Connect::Attach, |fleet| async move {
            backup::backup_clinic(&fleet, id, &out).await
        })
        .await?;
        if args.json {
            print_json(&done)?;
        } else {
            println!(
                "{} ({}, encrypted) in {:.1} s",
                done.file.display(),
                human_bytes(i64::try_from(done.bytes).ok()),
                done.seconds
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let dir = args.dir.clone().unwrap_or_default();
    let jobs = usize::from(args.jobs);
    let results = with_fleet(&args.db, Connect::Attach, |fleet| async move {
        let mut line = ProgressLine::new("backups");
        let results = backup::backup_all(&fleet, &dir, jobs, |done, total| {
            line.show(&format!("{done}/{total}"));
        })
        .await;
        line.finish();
        results
    })
    .await?;
    let failed = results.iter().filter(|r| r.error.is_some()).count();
    if args.json {
        print_json(&results)?;
        return Ok(status(failed == 0));
    }
    let mut table = Table::new(&["CLINIC", "FILE", "SIZE", "RESULT"]);
    for result in &results {
        let (file, size) = match &result.backup {
            Some(b) => (
                b.file.display().to_string(),
                human_bytes(i64::try_from(b.bytes).ok()),
            ),
            None => ("-".into(), "-".into()),
        };
        table.row(vec![
            result.clinic_id.to_string(),
            file,
            size,
            result
                .error
                .clone()
                .unwrap_or_else(|| "ok".into())
                .replace('\n', " "),
        ]);
    }
    table.print();
    println!("{} backed up, {failed} failed", results.len() - failed);
    Ok(status(failed == 0))
}

#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub db: DatabaseArgs,
    /// The clinic to restore into; with --as-new-clinic, the clinic the backup must be of.
    #[arg(long, required_unless_present = "as_new_clinic")]
    pub clinic: Option<Uuid>,
    /// The backup file (made by `medicalpro backup`, opened with MASTER_KEY or MASTER_KEY_PREVIOUS).
    #[arg(long, value_name = "FILE")]
    pub from: PathBuf,
    /// Replace the clinic's database even though it holds patients.
    #[arg(long)]
    pub force: bool,
    /// Restore into a new clinic (new id, database, role and password) instead.
    #[arg(long)]
    pub as_new_clinic: bool,
    /// The new clinic's name (default: the backed-up name + " (restored)").
    #[arg(long, requires = "as_new_clinic")]
    pub name: Option<String>,
    /// The new clinic's email (default: the backed-up one tagged +restored-<id>).
    #[arg(long, requires = "as_new_clinic")]
    pub email: Option<String>,
    /// Who runs the restore, recorded with it (default: the operating-system user).
    #[arg(long, value_name = "NAME")]
    pub operator: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

pub async fn restore(args: RestoreArgs) -> anyhow::Result<ExitCode> {
    let options = RestoreOptions {
        clinic: args.clinic.map(ClinicId),
        from: args.from.clone(),
        force: args.force,
        as_new_clinic: args.as_new_clinic.then(|| NewIdentity {
            name: args.name.clone(),
            email: args.email.clone(),
        }),
        operator: args.operator.clone(),
    };
    let restored = with_fleet(&args.db, Connect::Open, |fleet| async move {
        Ok(restore::restore(&fleet, &options).await?)
    })
    .await?;
    if args.json {
        print_json(&restored)?;
    } else {
        let what = if restored.new_clinic {
            "new clinic"
        } else {
            "clinic"
        };
        println!(
            "restored into {what} {} (backup at schema version {}, now {}) in {:.1} s",
            restored.clinic_id, restored.backup_version, restored.schema_version, restored.seconds
        );
        println!("audit trail {}", restored.audit_chain.describe());
    }
    Ok(ExitCode::SUCCESS)
}
