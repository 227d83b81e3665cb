//! `medicalpro migrate`: central, then every clinic, with a progress line,
//! one line per clinic migrated or failed, a per-version summary and the
//! list of failures; `--json` gives every clinic.

use std::process::ExitCode;

use uuid::Uuid;

use super::output::{print_json, ProgressLine, Table};
use super::status;
use crate::config::DatabaseArgs;
use crate::ops::migrate::{self, MigrateOptions, MigrateReport, Progress, Status};
use crate::ops::{CentralMissing, Fleet};
use crate::tenancy::naming::ClinicId;

#[derive(Debug, clap::Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub db: DatabaseArgs,
    /// Migrate only this clinic (and central).
    #[arg(long)]
    pub clinic: Option<Uuid>,
    /// Clinics migrated at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: u16,
    /// List the migrations that would run; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the report as JSON: central and every clinic (id, versions
    /// from and to, status, error).
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: MigrateArgs) -> anyhow::Result<ExitCode> {
    let options = MigrateOptions {
        clinic: args.clinic.map(ClinicId),
        jobs: usize::from(args.jobs),
        dry_run: args.dry_run,
        ..MigrateOptions::default()
    };
    let report = super::with_settings(&args.db, |settings| async move {
        // A first run creates central; a dry run never does.
        let fleet = match Fleet::attach(&settings).await {
            Err(error) if !options.dry_run && error.is::<CentralMissing>() => {
                Fleet::open(&settings).await?
            }
            other => other?,
        };
        let mut line = ProgressLine::new("clinics");
        let report = migrate::run(&fleet, &options, |p: Progress| {
            line.show(&format!("{}/{} done, {} failed", p.done, p.total, p.failed));
        })
        .await;
        line.finish();
        fleet.close().await;
        report
    })
    .await?;
    let ok = report.failures().next().is_none();
    if args.json {
        print_json(&report)?;
    } else {
        print_report(&report);
    }
    Ok(status(ok))
}

fn print_report(report: &MigrateReport) {
    let central = &report.central;
    let verb = if report.dry_run {
        "would apply"
    } else {
        "applied"
    };
    println!(
        "central: version {} -> {}, {verb} {}",
        central.from_version,
        central.to_version,
        versions(&central.applied)
    );
    if report.dry_run {
        let mut table = Table::new(&["CLINIC", "AT", "WOULD APPLY"]);
        for outcome in report
            .clinics
            .iter()
            .filter(|o| !o.applied.is_empty() || o.error.is_some())
        {
            table.row(vec![
                outcome
                    .clinic_id
                    .map(|id| id.to_string())
                    .unwrap_or_default(),
                outcome.from_version.to_string(),
                match &outcome.error {
                    Some(error) => format!("cannot tell: {error}"),
                    None => versions(&outcome.applied),
                },
            ]);
        }
        println!(
            "clinics: {} of {} have migrations to apply (newest clinic version: {})",
            report
                .clinics
                .iter()
                .filter(|o| !o.applied.is_empty())
                .count(),
            report.clinics.len(),
            report.latest_clinic_version
        );
        if !table.is_empty() {
            table.print();
        }
        return;
    }
    for line in clinic_lines(report) {
        println!("{line}");
    }
    println!(
        "clinics: {} migrated to the newest version {} or already there",
        report
            .clinics
            .iter()
            .filter(|o| o.error.is_none() && o.to_version == report.latest_clinic_version)
            .count(),
        report.latest_clinic_version
    );
    let mut by_version = Table::new(&["VERSION", "CLINICS"]);
    for (version, count) in report.clinics_by_version().iter().rev() {
        by_version.row(vec![version.to_string(), count.to_string()]);
    }
    if !by_version.is_empty() {
        by_version.print();
    }
    let failures: Vec<_> = report.failures().collect();
    if !failures.is_empty() {
        println!(
            "\nfailed ({}): run `medicalpro migrate` again once fixed",
            failures.len()
        );
        let mut table = Table::new(&["DATABASE", "AT", "ERROR"]);
        for outcome in failures {
            table.row(vec![
                outcome
                    .clinic_id
                    .map(|id| format!("clinic {id}"))
                    .unwrap_or_else(|| "central".into()),
                outcome.to_version.to_string(),
                outcome.error.clone().unwrap_or_default().replace('\n', " "),
            ]);
        }
        table.print();
    }
}

/// One line per clinic whose version changed (`<id> <from> -> <to>`) or
/// whose migration failed (`<id> FAILED: <error>`).
fn clinic_lines(report: &MigrateReport) -> Vec<String> {
    report
        .clinics
        .iter()
        .filter_map(|outcome| {
            let id = outcome.clinic_id?;
            match (outcome.status, &outcome.error) {
                (Status::Failed, error) => Some(format!(
                    "{id} FAILED: {}",
                    error.as_deref().unwrap_or("unknown").replace('\n', " ")
                )),
                (Status::Migrated, _) => Some(format!(
                    "{id} {} -> {}",
                    outcome.from_version, outcome.to_version
                )),
                _ => None,
            }
        })
        .collect()
}

fn versions(list: &[i64]) -> String {
    if list.is_empty() {
        "nothing".into()
    } else {
        list.iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}
