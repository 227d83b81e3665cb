//! `medicalpro doctor`.

use std::process::ExitCode;

use super::output::{print_json, Table};
use super::status;
use crate::app::Environment;
use crate::ops::doctor::{self, DoctorReport, Severity};

#[derive(Debug, clap::Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub db: crate::config::DatabaseArgs,
    /// Clinics checked at once.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: u16,
    /// List every clinic, not only those with a problem.
    #[arg(long)]
    pub verbose: bool,
    /// Print the findings as JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: DoctorArgs) -> anyhow::Result<ExitCode> {
    let report = match Environment::resolve(&args.db).await {
        Ok(environment) => {
            let report = doctor::run(&environment.settings, usize::from(args.jobs)).await;
            environment.stop();
            report
        }
        Err(error) => DoctorReport::unconfigured(&error),
    };
    if args.json {
        print_json(&report)?;
    } else {
        print_report(&report, args.verbose);
    }
    Ok(status(report.healthy()))
}

fn print_report(report: &DoctorReport, verbose: bool) {
    let mut table = Table::new(&["CHECK", "STATUS", "DETAIL"]);
    let mut clinics = [0usize; 3];
    for finding in &report.findings {
        let is_clinic = finding.subject == "clinic";
        if is_clinic {
            clinics[finding.severity as usize] += 1;
        }
        if is_clinic && finding.severity == Severity::Ok && !verbose {
            continue;
        }
        let subject = match finding.clinic_id {
            Some(id) => format!("{} {id}", finding.subject),
            None => finding.subject.clone(),
        };
        let label = match finding.severity {
            Severity::Ok => "ok",
            Severity::Warning => "WARNING",
            Severity::Failure => "FAILED",
        };
        table.row(vec![
            subject,
            label.into(),
            finding.message.replace('\n', " "),
        ]);
    }
    table.print();
    println!(
        "clinics: {} ok, {} with warnings, {} failing",
        clinics[0], clinics[1], clinics[2]
    );
    if report.healthy() {
        println!("no problem found");
    }
}
