//! `medicalpro backup`: one clinic's database in `pg_dump`'s custom format,
//! dumped as the admin role (so the admin-owned audit trail is included),
//! written to a temporary file (mode 0600: it holds patient data) that is
//! renamed into place only once complete, beside a `FILE.sha256` checksum
//! in `sha256sum` format.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use serde::Serialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::pgtools::{PgTools, Target};
use super::{connect, for_each_bounded, ClinicRecord, Fleet};
use crate::tenancy::naming::ClinicId;

/// A finished backup.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Backup {
    pub clinic_id: Uuid,
    pub file: PathBuf,
    pub bytes: u64,
    pub sha256: String,
    pub seconds: f64,
}

/// One clinic's result in `backup --all`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupResult {
    pub clinic_id: Uuid,
    pub backup: Option<Backup>,
    pub error: Option<String>,
}

/// The checksum file beside `file`.
pub fn checksum_path(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".sha256");
    PathBuf::from(name)
}

/// Backs up one clinic to `out`.
pub async fn backup_clinic(fleet: &Fleet, id: ClinicId, out: &Path) -> anyhow::Result<Backup> {
    let clinic = fleet.clinic(id).await?;
    dump(fleet, &clinic, out).await
}

/// Backs up every provisioned clinic into `dir` as
/// `<clinic id>-<UTC time>.dump`, `jobs` at once; a failure does not stop
/// the others.
pub async fn backup_all(
    fleet: &Fleet,
    dir: &Path,
    jobs: usize,
    mut progress: impl FnMut(usize, usize),
) -> anyhow::Result<Vec<BackupResult>> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let clinics = fleet.clinics(None).await?;
    let total = clinics.len();
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    let fleet = Arc::new(fleet.clone());
    let dir = dir.to_owned();
    let mut done = 0;
    progress(done, total);
    let results = for_each_bounded(
        clinics,
        jobs,
        |clinic| {
            let (fleet, out) = (
                fleet.clone(),
                dir.join(format!("{}-{stamp}.dump", clinic.id)),
            );
            async move {
                match dump(&fleet, &clinic, &out).await {
                    Ok(backup) => BackupResult {
                        clinic_id: clinic.id,
                        backup: Some(backup),
                        error: None,
                    },
                    Err(error) => BackupResult {
                        clinic_id: clinic.id,
                        backup: None,
                        error: Some(format!("{error:#}")),
                    },
                }
            }
        },
        |_| {
            done += 1;
            progress(done, total);
        },
    )
    .await;
    Ok(results)
}

async fn dump(fleet: &Fleet, clinic: &ClinicRecord, out: &Path) -> anyhow::Result<Backup> {
    let started = Instant::now();
    let mut conn = connect(&fleet.admin_options_on(clinic, &clinic.db_name))
        .await
        .with_context(|| format!("connecting to the database of clinic {}", clinic.id))?;
    let tools = PgTools::for_server(&mut conn).await?;
    drop(conn);
    let target = Target::admin_on(
        &fleet.settings.admin_url,
        &clinic.db_host,
        u16::try_from(clinic.db_port).unwrap_or(5432),
        &clinic.db_name,
    )?;
    let partial = with_suffix(out, ".partial");
    create_private(&partial)?;
    let result = async {
        let file = partial.to_string_lossy().into_owned();
        tools
            .run(
                &tools.pg_dump,
                &target,
                &["--format=custom", "--no-password", "--file", &file],
            )
            .await?;
        let path = partial.clone();
        let (sha256, bytes) = tokio::task::spawn_blocking(move || hash_file(&path)).await??;
        fs::rename(&partial, out).with_context(|| format!("writing {}", out.display()))?;
        write_checksum(out, &sha256)?;
        anyhow::Ok((sha256, bytes))
    }
    .await;
    let (sha256, bytes) = result.inspect_err(|_| {
        let _ = fs::remove_file(&partial);
    })?;
    tracing::info!(clinic.id = %clinic.id, bytes, duration_ms = started.elapsed().as_millis() as u64, "clinic backed up");
    Ok(Backup {
        clinic_id: clinic.id,
        file: out.to_owned(),
        bytes,
        sha256,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Checks `file` against its `FILE.sha256`.
pub fn verify_checksum(file: &Path) -> anyhow::Result<()> {
    let sums = checksum_path(file);
    let text = fs::read_to_string(&sums).with_context(|| {
        format!(
            "reading {} (a backup is only restored with its checksum file)",
            sums.display()
        )
    })?;
    let expected = text.split_whitespace().next().unwrap_or_default();
    let (actual, _) = hash_file(file)?;
    if !expected.eq_ignore_ascii_case(&actual) {
        anyhow::bail!(
            "{} does not match its checksum: the file is damaged or incomplete",
            file.display()
        );
    }
    Ok(())
}

/// SHA-256 (lower-case hex) and length of a file, read in chunks.
fn hash_file(path: &Path) -> anyhow::Result<(String, u64)> {
    let mut file = fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        total += read as u64;
    }
    let hex = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok((hex, total))
}

fn write_checksum(file: &Path, sha256: &str) -> anyhow::Result<()> {
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let sums = checksum_path(file);
    let partial = with_suffix(&sums, ".partial");
    let mut out = fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&partial)
        .with_context(|| format!("writing {}", partial.display()))?;
    writeln!(out, "{sha256}  {name}")?;
    out.sync_all()?;
    fs::rename(&partial, &sums).with_context(|| format!("writing {}", sums.display()))?;
    Ok(())
}

/// An empty file only its owner can read, for `pg_dump` to fill.
fn create_private(path: &Path) -> anyhow::Result<()> {
    fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    Ok(())
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checksum_file_is_checked_and_a_damaged_backup_refused() {
        let dir = std::env::temp_dir().join(format!("medicalpro-sum-{}", Uuid::new_v4()));
        fs::create_dir_all(&dir).unwrap();
        let file = dir.join("clinic.dump");
        fs::write(&file, b"PGDMP fake dump").unwrap();
        assert!(verify_checksum(&file).is_err(), "no checksum file");
        let (sum, bytes) = hash_file(&file).unwrap();
        assert_eq!(bytes, 15);
        write_checksum(&file, &sum).unwrap();
        let line = fs::read_to_string(checksum_path(&file)).unwrap();
        assert_eq!(line, format!("{sum}  clinic.dump\n"));
        verify_checksum(&file).unwrap();
        fs::write(&file, b"PGDMP fake dumq").unwrap();
        assert!(verify_checksum(&file).is_err(), "damaged");
        fs::remove_dir_all(&dir).unwrap();
    }
}
