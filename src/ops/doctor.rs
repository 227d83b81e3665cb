//! `medicalpro doctor`: checks the configuration, the central database
//! (reachable, at the binary's schema version), the backup tools, and every
//! clinic database (its password opens, its role connects, its schema is
//! current, its audit chain still holds the head last recorded and links
//! after it), and says what is wrong. It changes nothing.

use std::sync::Arc;

use serde::Serialize;
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use super::pgtools::{server_major, PgTools};
use super::{
    applied_versions, applied_versions_in, connect, for_each_bounded, keys, ClinicRecord, Fleet,
};
use crate::central::users;
use crate::compliance;
use crate::config::Settings;
use crate::migrations;
use crate::tenancy::naming::ClinicId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Ok,
    Warning,
    Failure,
}

/// One thing checked.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    /// `configuration`, `central`, `backup tools`, `provisioning`, `staff` or `clinic`.
    pub subject: String,
    pub clinic_id: Option<Uuid>,
    pub severity: Severity,
    pub message: String,
}

impl Finding {
    fn new(subject: &str, severity: Severity, message: impl Into<String>) -> Self {
        Self {
            subject: subject.to_owned(),
            clinic_id: None,
            severity,
            message: message.into(),
        }
    }

    fn clinic(id: Uuid, severity: Severity, message: impl Into<String>) -> Self {
        Self {
            clinic_id: Some(id),
            ..Self::new("clinic", severity, message)
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct DoctorReport {
    pub findings: Vec<Finding>,
}

impl DoctorReport {
    /// Healthy when nothing failed (warnings allowed).
    pub fn healthy(&self) -> bool {
        self.findings
            .iter()
            .all(|f| f.severity != Severity::Failure)
    }

    /// The report of a configuration that could not even be read.
    pub fn unconfigured(error: &anyhow::Error) -> Self {
        Self {
            findings: vec![Finding::new(
                "configuration",
                Severity::Failure,
                format!("{error:#}"),
            )],
        }
    }

    fn push(&mut self, finding: Finding) {
        self.findings.push(finding);
    }
}

/// Runs every check, `jobs` clinics at once.
pub async fn run(settings: &Settings, jobs: usize) -> DoctorReport {
    let mut report = DoctorReport::default();
    report.push(Finding::new(
        "configuration",
        Severity::Ok,
        format!("valid (prefix {})", settings.prefix.as_str()),
    ));
    let fleet = match Fleet::attach(settings).await {
        Ok(fleet) => fleet,
        Err(error) => {
            report.push(Finding::new(
                "central",
                Severity::Failure,
                format!("{error:#}"),
            ));
            return report;
        }
    };
    if let Err(error) = check_rotation(&fleet, &mut report).await {
        report.push(Finding::new(
            "central",
            Severity::Failure,
            format!("{error:#}"),
        ));
    }
    if let Err(error) = check_fleet(&fleet, jobs, &mut report).await {
        report.push(Finding::new(
            "central",
            Severity::Failure,
            format!("{error:#}"),
        ));
    }
    fleet.close().await;
    report
}

/// A key rotation left unfinished: clinics whose password is not sealed
/// with the current key alone, or is between two passwords.
async fn check_rotation(fleet: &Fleet, report: &mut DoctorReport) -> anyhow::Result<()> {
    let unfinished = keys::unfinished(fleet).await?;
    if !unfinished.is_empty() {
        report.push(Finding::new(
            "configuration",
            Severity::Warning,
            format!(
                "the key rotation of {} clinic(s) is unfinished: run `medicalpro keys rotate` to finish it",
                unfinished.len()
            ),
        ));
    } else if fleet.settings.keys.files().is_none() && fleet.settings.keyring().previous.is_some() {
        report.push(Finding::new(
            "configuration",
            Severity::Warning,
            "MASTER_KEY_PREVIOUS is set but every clinic is sealed with MASTER_KEY: it can be removed (keep it with the backups made before the rotation)",
        ));
    }
    Ok(())
}

async fn check_fleet(fleet: &Fleet, jobs: usize, report: &mut DoctorReport) -> anyhow::Result<()> {
    let mut central = fleet.databases.central.acquire().await?;
    let server: String = sqlx::query_scalar("SELECT current_setting('server_version')")
        .fetch_one(&mut *central)
        .await?;
    let latest = migrations::latest_version(&migrations::CENTRAL);
    let applied = applied_versions(&mut central)
        .await?
        .last()
        .copied()
        .unwrap_or(0);
    report.push(version_finding(
        "central",
        None,
        applied,
        latest,
        &format!("PostgreSQL {server}, "),
    ));
    let major = server_major(&mut central).await?;
    drop(central);
    report.push(
        match tokio::task::spawn_blocking(move || PgTools::find(major)).await? {
            Ok(tools) => Finding::new(
                "backup tools",
                Severity::Ok,
                format!(
                    "{} and pg_restore of PostgreSQL {major}",
                    tools.pg_dump.display()
                ),
            ),
            Err(error) => Finding::new("backup tools", Severity::Warning, format!("{error:#}")),
        },
    );
    let stuck: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM companies
          WHERE provisioning_status = 'pending' AND deleted_at IS NULL
            AND created_at < now() - interval '10 minutes'",
    )
    .fetch_all(&fleet.databases.central)
    .await?;
    for id in stuck {
        report.push(Finding {
            clinic_id: Some(id),
            ..Finding::new(
                "provisioning",
                Severity::Warning,
                "provisioning started over 10 minutes ago and never finished",
            )
        });
    }
    check_admins(fleet, report).await?;
    let clinics = fleet.clinics(None).await?;
    let fleet = Arc::new(fleet.clone());
    let findings = for_each_bounded(
        clinics,
        jobs,
        |clinic| check_clinic(fleet.clone(), clinic),
        |_| {},
    )
    .await;
    report.findings.extend(findings.into_iter().flatten());
    Ok(())
}

/// Flags every active clinic without an active admin: nobody can manage
/// its staff until the operator makes one.
async fn check_admins(fleet: &Fleet, report: &mut DoctorReport) -> anyhow::Result<()> {
    for id in users::clinics_without_admin(&fleet.databases.central).await? {
        report.push(Finding {
            clinic_id: Some(id),
            ..Finding::new(
                "staff",
                Severity::Warning,
                format!(
                    "no active admin account: `medicalpro user create --clinic {id} --email E --role admin`"
                ),
            )
        });
    }
    Ok(())
}

/// The clinic's schema version, and the databases besides its own that its
/// login role may connect to (as the role itself sees them).
async fn check_clinic(fleet: Arc<Fleet>, clinic: ClinicRecord) -> Vec<Finding> {
    let options = match fleet.role_options(&clinic) {
        Ok(options) => options,
        Err(error) => {
            return vec![Finding::clinic(
                clinic.id,
                Severity::Failure,
                format!("{error:#}"),
            )]
        }
    };
    let mut conn = match connect(&options).await {
        Ok(conn) => conn,
        Err(error) => {
            return vec![Finding::clinic(
                clinic.id,
                Severity::Failure,
                format!("its role cannot connect to its database: {error:#}"),
            )]
        }
    };
    let mut findings = vec![check_version(&mut conn, &clinic).await];
    findings.extend(check_reach(&mut conn, &clinic).await);
    findings.extend(check_audit_chain(&fleet, &mut conn, &clinic).await);
    let _ = conn.close().await;
    findings
}

/// A failure when the audit chain no longer holds the head central
/// recorded last (at a verification or a restore) or a row after it does
/// not link or hash: the cheap part of `audit verify`, read-only, as the
/// login role (which may read its trail).
async fn check_audit_chain(
    fleet: &Fleet,
    conn: &mut PgConnection,
    clinic: &ClinicRecord,
) -> Option<Finding> {
    match compliance::check_recent(&fleet.databases.central, conn, ClinicId(clinic.id)).await {
        Ok(None) => None,
        Ok(Some(broken)) => Some(Finding::clinic(
            clinic.id,
            Severity::Failure,
            format!(
                "its audit chain is BROKEN at id {}: {}; `medicalpro audit verify --clinic {}` walks it all",
                broken.id, broken.reason, clinic.id
            ),
        )),
        Err(error) => Some(Finding::clinic(
            clinic.id,
            Severity::Warning,
            format!("reading its audit chain: {error}"),
        )),
    }
}

/// A warning when the login role may connect to another database of its
/// server (on a server the product does not own, `PUBLIC` keeps `CONNECT`
/// on `postgres` and `template1` unless the operator withdraws it).
async fn check_reach(conn: &mut PgConnection, clinic: &ClinicRecord) -> Option<Finding> {
    let reachable: Result<Vec<String>, sqlx::Error> = sqlx::query_scalar(
        "SELECT datname::text FROM pg_catalog.pg_database
          WHERE datallowconn AND datname <> pg_catalog.current_database()
            AND pg_catalog.has_database_privilege(oid, 'CONNECT')
          ORDER BY 1",
    )
    .fetch_all(conn)
    .await;
    match reachable {
        Ok(names) if names.is_empty() => None,
        Ok(names) => Some(Finding::clinic(
            clinic.id,
            Severity::Warning,
            format!(
                "its login role may connect to other databases: {}; withdraw it with \
                 `REVOKE CONNECT ON DATABASE <name> FROM PUBLIC` (see the operations guide)",
                names.join(", ")
            ),
        )),
        Err(error) => Some(Finding::clinic(
            clinic.id,
            Severity::Warning,
            format!("listing the databases its role may connect to: {error}"),
        )),
    }
}

async fn check_version(conn: &mut PgConnection, clinic: &ClinicRecord) -> Finding {
    let applied = match applied_versions_in(conn, clinic.schema()).await {
        Ok(versions) => versions.last().copied().unwrap_or(0),
        Err(error) => {
            return Finding::clinic(
                clinic.id,
                Severity::Failure,
                format!("reading its schema version: {error}"),
            )
        }
    };
    let latest = migrations::latest_version(&migrations::CLINIC);
    let suspended = if clinic.is_active { "" } else { "suspended, " };
    let mut finding = version_finding("clinic", Some(clinic.id), applied, latest, suspended);
    if finding.severity == Severity::Ok && clinic.schema_version != applied {
        finding.severity = Severity::Warning;
        finding.message = format!(
            "at version {applied}, but central records {}: `medicalpro migrate --clinic {}` records it",
            clinic.schema_version, clinic.id
        );
    }
    finding
}

fn version_finding(
    subject: &str,
    clinic: Option<Uuid>,
    applied: i64,
    latest: i64,
    prefix: &str,
) -> Finding {
    let (severity, message) = if applied < latest {
        (
            Severity::Failure,
            format!("{prefix}schema at version {applied}, this binary's is {latest}: run `medicalpro migrate`"),
        )
    } else if applied > latest {
        (
            Severity::Failure,
            format!("{prefix}schema at version {applied}, newer than this binary's {latest}: upgrade medicalpro"),
        )
    } else {
        (
            Severity::Ok,
            format!("{prefix}reachable, schema version {applied}"),
        )
    };
    Finding {
        clinic_id: clinic,
        ..Finding::new(subject, severity, message)
    }
}
