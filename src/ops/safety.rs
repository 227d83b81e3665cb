//! What a restore does before it replaces a live clinic database: it counts
//! the rows of the main tables in the live database and in the backup (as
//! staged), so the operator sees what is lost, then takes a safety backup of
//! the live database: the same encrypted format as `medicalpro backup`, mode
//! 0600, into `safety/` beside the backup file being restored, named
//! `<clinic id>-<UTC time>-before-restore.dump` (restoring one of those
//! puts the next safety backup beside it). A safety backup is kept
//! [`KEEP_DAYS`] days: each restore deletes the older ones of that directory.

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use serde::Serialize;
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use super::backup::{backup_clinic, WhenExists};
use super::{connect, ClinicRecord, Fleet};
use crate::tenancy::ddl;
use crate::tenancy::naming::{quote_ident, ClinicId};

/// How long a safety backup is kept before a later restore deletes it.
pub const KEEP_DAYS: u64 = 7;
/// The directory, beside the backup file, that holds the safety backups.
pub const DIR_NAME: &str = "safety";
/// How every safety backup's name ends; nothing else there is ever purged.
const SUFFIX: &str = "-before-restore.dump";
/// The tables whose rows are compared, most telling first.
pub const COUNTED_TABLES: &[&str] = &[
    "patients",
    "practitioners",
    "appointments",
    "medical_records",
    "consents",
    "documents",
    "audit_events",
];

/// A table's rows in the live database and in the backup (`None`: no such
/// table there).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TableCount {
    pub table: String,
    pub live: Option<i64>,
    pub backup: Option<i64>,
}

/// What replacing a clinic's live database discards, and where its copy is.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Replacement {
    pub clinic_id: Uuid,
    /// Whether the clinic's database exists (a dropped one loses nothing).
    pub live_exists: bool,
    pub tables: Vec<TableCount>,
    /// The safety backup of the live database (none when it does not exist).
    pub safety_backup: Option<PathBuf>,
}

/// Where the safety backups of a restore from `from` go: `safety/` beside
/// it, or that directory itself when `from` is one of its copies.
pub fn safety_dir(from: &Path) -> PathBuf {
    let beside = from
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if beside.file_name().is_some_and(|name| name == DIR_NAME) {
        beside.to_owned()
    } else {
        beside.join(DIR_NAME)
    }
}

/// Counts what the live database and the staged backup hold, tells
/// `announce` (before anything is changed), then writes the safety backup
/// of the live database and purges the expired ones beside it.
pub async fn before_replacing(
    fleet: &Fleet,
    clinic: &ClinicRecord,
    staged: &str,
    from: &Path,
    announce: &(dyn Fn(&Replacement) + Sync),
) -> anyhow::Result<Replacement> {
    let live = count_rows(fleet, clinic, &clinic.db_name, clinic.schema()).await?;
    let backup = count_rows(fleet, clinic, staged, "public")
        .await?
        .context("the staged backup database is missing")?;
    let dir = safety_dir(from);
    let replacement = Replacement {
        clinic_id: clinic.id,
        live_exists: live.is_some(),
        tables: COUNTED_TABLES
            .iter()
            .zip(backup)
            .enumerate()
            .map(|(i, (table, backup))| TableCount {
                table: (*table).to_owned(),
                live: live.as_ref().and_then(|live| live[i]),
                backup,
            })
            .collect(),
        safety_backup: live.is_some().then(|| {
            let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
            dir.join(format!("{}-{stamp}{SUFFIX}", clinic.id))
        }),
    };
    announce(&replacement);
    if let Some(file) = &replacement.safety_backup {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .with_context(|| format!("creating {}", dir.display()))?;
        backup_clinic(fleet, ClinicId(clinic.id), file, WhenExists::Refuse)
            .await
            .context("the safety backup of the live database failed: nothing was replaced")?;
    }
    match purge_expired(&dir, SystemTime::now()) {
        Ok(purged) if purged > 0 => {
            tracing::info!(purged, dir = %dir.display(), "expired safety backups deleted")
        }
        Ok(_) => {}
        Err(error) => tracing::warn!(%error, "deleting expired safety backups failed"),
    }
    Ok(replacement)
}

/// The rows of each of [`COUNTED_TABLES`] in `schema` of `database` on
/// the clinic's server; `None` when the database does not exist.
async fn count_rows(
    fleet: &Fleet,
    clinic: &ClinicRecord,
    database: &str,
    schema: &str,
) -> anyhow::Result<Option<Vec<Option<i64>>>> {
    let mut conn = match connect(&ddl::admin_session(
        fleet.admin_options_on(clinic, database),
    ))
    .await
    {
        Ok(conn) => conn,
        Err(error) if is_missing_database(&error) => return Ok(None),
        Err(error) => return Err(error),
    };
    let mut counts = Vec::with_capacity(COUNTED_TABLES.len());
    for table in COUNTED_TABLES {
        counts.push(count_table(&mut conn, schema, table).await?);
    }
    let _ = conn.close().await;
    Ok(Some(counts))
}

async fn count_table(
    conn: &mut PgConnection,
    schema: &str,
    table: &str,
) -> Result<Option<i64>, sqlx::Error> {
    let schema = quote_ident(schema);
    let exists: bool = sqlx::query_scalar("SELECT pg_catalog.to_regclass($1) IS NOT NULL")
        .bind(format!("{schema}.{table}"))
        .fetch_one(&mut *conn)
        .await?;
    if !exists {
        return Ok(None);
    }
    // `table` is one of COUNTED_TABLES, quoted all the same.
    let count = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM {schema}.{}",
        quote_ident(table)
    ))
    .fetch_one(conn)
    .await?;
    Ok(Some(count))
}

/// 3D000: the database does not exist.
fn is_missing_database(error: &anyhow::Error) -> bool {
    error
        .downcast_ref::<sqlx::Error>()
        .and_then(|e| e.as_database_error())
        .and_then(|e| e.code())
        .is_some_and(|code| code == "3D000")
}

/// Deletes the safety backups in `dir` last written more than [`KEEP_DAYS`]
/// before `now`; returns how many. Other files are left alone.
pub fn purge_expired(dir: &Path, now: SystemTime) -> std::io::Result<usize> {
    let keep = Duration::from_secs(KEEP_DAYS * 24 * 60 * 60);
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(error) => return Err(error),
    };
    let mut purged = 0;
    for entry in entries {
        let entry = entry?;
        let is_safety_copy = entry.file_name().to_string_lossy().ends_with(SUFFIX);
        let metadata = entry.metadata()?;
        let expired = metadata
            .modified()
            .ok()
            .and_then(|written| now.duration_since(written).ok())
            .is_some_and(|age| age > keep);
        if is_safety_copy && metadata.is_file() && expired {
            fs::remove_file(entry.path())?;
            purged += 1;
        }
    }
    Ok(purged)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_expired_safety_copies_are_purged() {
        let dir = std::env::temp_dir().join(format!("medicalpro-safety-{}", Uuid::new_v4()));
        fs::create_dir_all(&dir).unwrap();
        let now = SystemTime::now();
        let days = |n: u64| now - Duration::from_secs(n * 24 * 60 * 60);
        for (name, written) in [
            ("a-20260101T000000.000Z-before-restore.dump", days(8)),
            ("b-20260101T000000.000Z-before-restore.dump", days(6)),
            ("clinic.dump", days(30)),
        ] {
            let file = fs::File::create(dir.join(name)).unwrap();
            file.set_modified(written).unwrap();
        }
        assert_eq!(purge_expired(&dir, now).unwrap(), 1);
        let mut left: Vec<String> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            ["b-20260101T000000.000Z-before-restore.dump", "clinic.dump"]
        );
        assert_eq!(purge_expired(&dir.join("none"), now).unwrap(), 0);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn safety_copies_go_beside_the_backup() {
        assert_eq!(
            safety_dir(Path::new("/backups/2026-11-29/clinic.dump")),
            Path::new("/backups/2026-11-29/safety")
        );
        assert_eq!(safety_dir(Path::new("clinic.dump")), Path::new("./safety"));
        assert_eq!(
            safety_dir(Path::new("/backups/safety/x-before-restore.dump")),
            Path::new("/backups/safety")
        );
    }
}
