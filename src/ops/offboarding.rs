//! A clinic leaving the platform: `medicalpro clinic export` writes all of
//! its data in open formats, readable without MedicalPro; `clinic close`
//! suspends it, exports it, and schedules the destruction of its database
//! and roles; the destruction itself runs once the delay has passed (every
//! hour in `serve`, or `medicalpro clinic destroy-closed`), leaving in
//! central a tombstone without personal data and a platform audit event.
//!
//! An export is a directory (mode 0700) of files (mode 0600):
//! - `<table>.json` for every table of the clinic database: a JSON array,
//!   one object per row, columns by name (bytes as `\x` hex strings,
//!   times in ISO 8601), as PostgreSQL's `row_to_json` writes them;
//! - `clinic.json`: the clinic's central record; `staff.json`: its staff
//!   accounts (no password hashes);
//! - `erasures.json`: the clinic's erasure ledger (keyed hashes of the
//!   erased patients' ids and when; no personal data);
//! - `manifest.json`: what each file is, with its row count.

use std::fs;
use std::io::{BufWriter, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::TryStreamExt;
use serde::Serialize;
use serde_json::{json, Value};
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use super::delete::tombstone;
use super::{connect, ClinicRecord, Fleet};
use crate::central::{audit, companies, erasures};
use crate::tenancy::ddl::{self, TenantRoles};
use crate::tenancy::naming::{quote_ident, ClinicId};

/// The export's format version (in `manifest.json`).
const FORMAT: u32 = 1;

/// Days between `clinic close` and the destruction, unless told otherwise.
pub const DEFAULT_CLOSE_DAYS: u32 = 30;

/// How often `serve` destroys the clinics whose closure delay has passed.
const DESTROY_INTERVAL: Duration = Duration::from_secs(60 * 60);

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Exported {
    pub clinic_id: Uuid,
    pub dir: PathBuf,
    /// Rows written per file.
    pub files: Vec<ExportedFile>,
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportedFile {
    pub file: String,
    pub rows: u64,
    pub description: String,
}

/// Writes all of a clinic's data into `out`, which must not exist yet or be
/// an empty directory.
pub async fn export_clinic(fleet: &Fleet, id: ClinicId, out: &Path) -> anyhow::Result<Exported> {
    let started = Instant::now();
    let clinic = fleet.clinic(id).await?;
    prepare_dir(out)?;
    let mut db = connect(&ddl::admin_session(
        fleet.admin_options_on(&clinic, &clinic.db_name),
    ))
    .await
    .with_context(|| format!("connecting to the database of clinic {id}"))?;
    let mut files = Vec::new();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_catalog.pg_class c
           JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = $1 AND c.relkind IN ('r', 'p')
          ORDER BY c.relname",
    )
    .bind(clinic.schema())
    .fetch_all(&mut db)
    .await?;
    for table in tables {
        let file = format!("{table}.json");
        let rows = export_table(&mut db, clinic.schema(), &table, &out.join(&file)).await;
        let rows = rows.with_context(|| format!("exporting {table}"))?;
        files.push(ExportedFile {
            file,
            rows,
            description: format!("the rows of the clinic database's table {table}"),
        });
    }
    let _ = db.close().await;
    files.extend(export_central(fleet, &clinic, out).await?);
    let manifest = json!({
        "format": FORMAT,
        "clinicId": clinic.id,
        "exportedAt": chrono::Utc::now(),
        "schemaVersion": clinic.schema_version,
        "files": files,
        "notes": "Each <table>.json is a JSON array of the rows of that table, one object per row with its columns by name, as PostgreSQL's row_to_json writes them (bytes as \\x hex strings, times in ISO 8601).",
    });
    write_json(&out.join("manifest.json"), &manifest)?;
    tracing::info!(clinic.id = %clinic.id, files = files.len(), "clinic exported");
    Ok(Exported {
        clinic_id: clinic.id,
        dir: out.to_owned(),
        files,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Streams one table into a JSON array, one row per line.
async fn export_table(
    db: &mut PgConnection,
    schema: &str,
    table: &str,
    path: &Path,
) -> anyhow::Result<u64> {
    let mut out = BufWriter::new(create_private(path)?);
    out.write_all(b"[")?;
    let sql = format!(
        "SELECT row_to_json(t)::text FROM {}.{} t",
        quote_ident(schema),
        quote_ident(table)
    );
    let mut rows = sqlx::query_scalar::<_, String>(&sql).fetch(db);
    let mut count = 0u64;
    while let Some(row) = rows.try_next().await? {
        out.write_all(if count == 0 { b"\n" } else { b",\n" })?;
        out.write_all(row.as_bytes())?;
        count += 1;
    }
    out.write_all(b"\n]\n")?;
    out.into_inner()?.sync_all()?;
    Ok(count)
}

/// `clinic.json`, `staff.json` and `erasures.json`, from central.
async fn export_central(
    fleet: &Fleet,
    clinic: &ClinicRecord,
    out: &Path,
) -> anyhow::Result<Vec<ExportedFile>> {
    let central = &fleet.databases.central;
    let id = ClinicId(clinic.id);
    let record = companies::find(central, id).await?;
    write_json(&out.join("clinic.json"), &json!(record))?;
    let staff: Vec<Value> = sqlx::query_scalar(
        "SELECT json_build_object('id', id, 'email', email, 'firstName', first_name,
                'lastName', last_name, 'role', role, 'isActive', is_active,
                'lastLoginAt', last_login_at, 'createdAt', created_at, 'deletedAt', deleted_at)
           FROM users WHERE company_id = $1 ORDER BY created_at",
    )
    .bind(clinic.id)
    .fetch_all(central)
    .await?;
    write_json(&out.join("staff.json"), &json!(staff))?;
    let ledger: Vec<Value> = erasures::ledger(central, &fleet.settings.keys, id)
        .await?
        .map(|ledger| {
            ledger
                .erased_at
                .iter()
                .map(|(key, at)| json!({"patientKey": hex(key), "erasedAt": at}))
                .collect()
        })
        .unwrap_or_default();
    write_json(&out.join("erasures.json"), &json!(ledger))?;
    Ok(vec![
        ExportedFile {
            file: "clinic.json".into(),
            rows: u64::from(record.is_some()),
            description: "the clinic's record in the platform's central database".into(),
        },
        ExportedFile {
            file: "staff.json".into(),
            rows: staff.len() as u64,
            description: "the clinic's staff accounts (no password hashes)".into(),
        },
        ExportedFile {
            file: "erasures.json".into(),
            rows: ledger.len() as u64,
            description: "the clinic's erasure ledger: for each patient erased (GDPR article 17), an HMAC-SHA-256 of the patient id under the clinic's own key, and when; no personal data".into(),
        },
    ])
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Closed {
    pub exported: Exported,
    pub destroy_after: chrono::DateTime<chrono::Utc>,
}

/// Suspends the clinic, exports it into `out`, and schedules its
/// destruction `days` days from now.
pub async fn close_clinic(
    fleet: &Fleet,
    id: ClinicId,
    out: &Path,
    days: u32,
) -> anyhow::Result<Closed> {
    let central = &fleet.databases.central;
    if !companies::set_active(central, id, false).await? {
        anyhow::bail!("no clinic has the id {id}");
    }
    let exported = export_clinic(fleet, id, out).await?;
    let destroy_after: chrono::DateTime<chrono::Utc> = sqlx::query_scalar(
        "UPDATE companies SET destroy_after = now() + make_interval(days => $2), updated_at = now()
          WHERE id = $1 RETURNING destroy_after",
    )
    .bind(id.0)
    .bind(i32::try_from(days).unwrap_or(i32::MAX))
    .fetch_one(central)
    .await?;
    let event = audit::PlatformEvent {
        action: "clinic.closed",
        actor_user_id: None,
        company_id: Some(id.0),
        client_addr: None,
        details: json!({"destroyAfter": destroy_after, "exportedFiles": exported.files.len()}),
    };
    audit::record(central, event).await?;
    Ok(Closed {
        exported,
        destroy_after,
    })
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Destroyed {
    pub clinic_id: Uuid,
    pub error: Option<String>,
}

/// Destroys every closed clinic whose delay has passed: its database and
/// roles dropped, its staff accounts deleted, its central row made a
/// tombstone, a `clinic.destroyed` event recorded. One failing does not
/// stop the others; it is tried again next time.
pub async fn destroy_due(fleet: &Fleet) -> anyhow::Result<Vec<Destroyed>> {
    let due: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM companies
          WHERE destroy_after <= now() AND NOT is_active AND deleted_at IS NULL
          ORDER BY destroy_after",
    )
    .fetch_all(&fleet.databases.central)
    .await?;
    let mut destroyed = Vec::with_capacity(due.len());
    for id in due {
        let outcome = destroy(fleet, ClinicId(id)).await;
        if let Err(error) = &outcome {
            tracing::error!(clinic.id = %id, error = format!("{error:#}"), "destroying a closed clinic failed");
        }
        destroyed.push(Destroyed {
            clinic_id: id,
            error: outcome.err().map(|error| format!("{error:#}")),
        });
    }
    Ok(destroyed)
}

/// [`destroy_due`] every hour, for `serve`.
pub async fn destroy_periodically(fleet: Fleet) {
    let mut ticks = tokio::time::interval(DESTROY_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match destroy_due(&fleet).await {
            Ok(destroyed) if destroyed.is_empty() => {}
            Ok(destroyed) => tracing::info!(clinics = destroyed.len(), "closed clinics destroyed"),
            Err(error) => tracing::warn!(
                error = format!("{error:#}"),
                "destroying closed clinics failed"
            ),
        }
    }
}

async fn destroy(fleet: &Fleet, id: ClinicId) -> anyhow::Result<()> {
    let clinic = fleet.clinic(id).await?;
    let mut admin = fleet
        .admin_on_server(&clinic.db_host, clinic.db_port)
        .await?;
    let dropped = async {
        if clinic.is_shared() {
            let mut in_pod = connect(&ddl::admin_session(
                fleet.admin_options_on(&clinic, &clinic.db_name),
            ))
            .await?;
            let dropped = ddl::drop_schema(&mut in_pod, clinic.schema()).await;
            let _ = in_pod.close().await;
            dropped?;
        } else {
            ddl::drop_database(&mut admin, &clinic.db_name).await?;
        }
        Ok::<_, anyhow::Error>(
            ddl::drop_roles(&mut admin, &TenantRoles::of(id, &fleet.settings.prefix)).await?,
        )
    }
    .await;
    let _ = admin.close().await;
    dropped?;
    tombstone(fleet, &clinic, "clinic.destroyed").await?;
    Ok(())
}

/// Creates `dir` (mode 0700), refusing one that holds anything.
fn prepare_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        let empty = fs::read_dir(dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .next()
            .is_none();
        if !empty {
            anyhow::bail!(
                "{} is not empty: export into a new directory",
                dir.display()
            );
        }
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))
}

fn create_private(path: &Path) -> anyhow::Result<fs::File> {
    fs::OpenOptions::new()
        .create_new(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))
}

fn write_json(path: &Path, value: &Value) -> anyhow::Result<()> {
    let mut file = create_private(path)?;
    file.write_all(&serde_json::to_vec_pretty(value)?)?;
    file.sync_all()?;
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}
