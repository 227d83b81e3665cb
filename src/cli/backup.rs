//! `medicalpro backup` and `medicalpro restore`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::ArgGroup;
use uuid::Uuid;

use super::output::{human_bytes, print_json, ProgressLine, Table};
use super::{status, with_fleet, with_settings, Connect};
use crate::config::DatabaseArgs;
use crate::ops::backup::{self, FileExists, WhenExists};
use crate::ops::recovery;
use crate::ops::restore::{self, NewIdentity, RestoreOptions};
use crate::ops::safety::{self, Replacement};
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
    /// Back up the whole platform: every clinic and central (with --dir).
    #[arg(long, requires = "dir")]
    pub all: bool,
    /// Directory for `--all`: one `<clinic id>-<UTC time>.dump` per clinic,
    /// `central-<UTC time>.dump` and the manifest `platform-<UTC time>.json`.
    #[arg(long, value_name = "DIR", requires = "all")]
    pub dir: Option<PathBuf>,
    /// Replace backup files that already exist (refused otherwise).
    #[arg(long)]
    pub force: bool,
    /// Clinics backed up at once with --all.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=32))]
    pub jobs: u16,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

pub async fn backup(args: BackupArgs) -> anyhow::Result<ExitCode> {
    let when_exists = if args.force {
        WhenExists::Replace
    } else {
        WhenExists::Refuse
    };
    if let (Some(id), Some(out)) = (args.clinic, args.out.clone()) {
        if when_exists == WhenExists::Refuse && out.symlink_metadata().is_ok() {
            // Refused before the platform is even started.
            return Err(FileExists(out).into());
        }
        let id = ClinicId(id);
        let done = with_fleet(&args.db, Connect::Attach, |fleet| async move {
            backup::backup_clinic(&fleet, id, &out, when_exists).await
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
    let platform = with_fleet(&args.db, Connect::Attach, |fleet| async move {
        let mut line = ProgressLine::new("backups");
        let platform = recovery::backup_platform(&fleet, &dir, jobs, when_exists, |done, total| {
            line.show(&format!("{done}/{total}"));
        })
        .await;
        line.finish();
        platform
    })
    .await?;
    let results = &platform.clinics;
    let failed = results.iter().filter(|r| r.error.is_some()).count();
    let ok = failed == 0 && platform.central_error.is_none();
    if args.json {
        print_json(&platform)?;
        return Ok(status(ok));
    }
    let mut table = Table::new(&["CLINIC", "FILE", "SIZE", "RESULT"]);
    for result in results {
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
    println!(
        "{} clinic(s) backed up, {failed} failed",
        results.len() - failed
    );
    match (&platform.manifest, &platform.central_error) {
        (Some(manifest), _) => println!(
            "central backed up; the platform backup's manifest is {}",
            manifest.display()
        ),
        (None, Some(error)) => {
            println!("central FAILED: {error} (this directory is no platform backup)")
        }
        (None, None) => {}
    }
    Ok(status(ok))
}

#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub db: DatabaseArgs,
    /// The clinic to restore into; with --as-new-clinic, the clinic the backup must be of.
    #[arg(long, required_unless_present_any = ["as_new_clinic", "platform"], conflicts_with = "platform")]
    pub clinic: Option<Uuid>,
    /// The backup file (made by `medicalpro backup`, opened with MASTER_KEY or MASTER_KEY_PREVIOUS).
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present = "platform",
        conflicts_with = "platform"
    )]
    pub from: Option<PathBuf>,
    /// Rebuild the whole platform on an empty server from a `backup --all`
    /// directory (its newest manifest): central, then every clinic with new
    /// roles and passwords.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["as_new_clinic", "force"])]
    pub platform: Option<PathBuf>,
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
    if let Some(dir) = &args.platform {
        return restore_platform(&args, dir).await;
    }
    let options = RestoreOptions {
        clinic: args.clinic.map(ClinicId),
        from: args.from.clone().unwrap_or_default(),
        force: args.force,
        as_new_clinic: args.as_new_clinic.then(|| NewIdentity {
            name: args.name.clone(),
            email: args.email.clone(),
        }),
        operator: args.operator.clone(),
    };
    // People see what is discarded before it is; scripts get it in the
    // JSON too, and the table on standard error.
    let json = args.json;
    let announce = move |replacement: &Replacement| {
        let text = replacement_text(replacement);
        if json {
            eprint!("{text}");
        } else {
            print!("{text}");
        }
    };
    let restored = with_fleet(&args.db, Connect::Open, |fleet| async move {
        Ok(restore::restore_announcing(&fleet, &options, &announce).await?)
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

async fn restore_platform(args: &RestoreArgs, dir: &Path) -> anyhow::Result<ExitCode> {
    let dir = dir.to_owned();
    let restored = with_settings(&args.db, |settings| async move {
        recovery::restore_platform(&settings, &dir).await
    })
    .await?;
    let failed = restored.failed();
    if args.json {
        print_json(&restored)?;
        return Ok(status(failed == 0));
    }
    for clinic in &restored.clinics {
        match &clinic.error {
            None => println!("{} restored", clinic.clinic_id),
            Some(error) => println!("{} FAILED: {error}", clinic.clinic_id),
        }
    }
    println!(
        "platform restored from {}: {} clinic(s), {failed} failed, in {:.1} s",
        restored.manifest.display(),
        restored.clinics.len(),
        restored.seconds
    );
    if failed > 0 {
        println!(
            "finish a failed clinic with `medicalpro restore --clinic ID --from FILE --force`"
        );
    }
    Ok(status(failed == 0))
}

/// What replacing a clinic's live database discards: rows per table, live
/// against the backup, and where the live database's safety backup goes.
fn replacement_text(replacement: &Replacement) -> String {
    let mut text = format!(
        "restoring replaces the live database of clinic {}:\n",
        replacement.clinic_id
    );
    if !replacement.live_exists {
        text.push_str("it does not exist: nothing is lost\n");
    }
    let count = |n: Option<i64>| n.map_or_else(|| "-".to_owned(), |n| n.to_string());
    let mut table = Table::new(&["TABLE", "LIVE", "BACKUP", "LOST"]);
    for row in &replacement.tables {
        let lost = row.live.unwrap_or(0) - row.backup.unwrap_or(0);
        table.row(vec![
            row.table.clone(),
            count(row.live),
            count(row.backup),
            lost.max(0).to_string(),
        ]);
    }
    text.push_str(&table.render());
    text.push_str("(LOST counts rows only: a row changed since the backup loses its change too)\n");
    if let Some(file) = &replacement.safety_backup {
        text.push_str(&format!(
            "safety backup of the live database: {} (kept {} days)\n",
            file.display(),
            safety::KEEP_DAYS
        ));
    }
    text
}
