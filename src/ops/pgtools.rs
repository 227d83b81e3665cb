//! `pg_dump` and `pg_restore`: found like the embedded cluster finds
//! `initdb` (`PATH`, then Debian's `/usr/lib/postgresql/<version>/bin`),
//! and only in the server's major version, so a dump always restores.
//!
//! They connect with the admin role. The password goes through the
//! `PGPASSWORD` environment variable of the child, never its command line
//! (which any local user can read).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::Context;
use sqlx::PgConnection;
use url::Url;

/// Connection parameters of `DATABASE_URL` that libpq understands too; the
/// others (sqlx's own) are left out of the tools' connection string.
const LIBPQ_PARAMETERS: &[&str] = &[
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "sslcrl",
    "connect_timeout",
    "options",
    "application_name",
    "target_session_attrs",
];

/// The PostgreSQL client programs matching one server major version.
#[derive(Debug, Clone)]
pub struct PgTools {
    pub pg_dump: PathBuf,
    pub pg_restore: PathBuf,
}

impl PgTools {
    /// The first directory holding both programs of version `major`.
    pub fn find(major: u32) -> anyhow::Result<Self> {
        let mut seen = Vec::new();
        for dir in candidate_dirs() {
            let (dump, restore) = (dir.join("pg_dump"), dir.join("pg_restore"));
            if !dump.is_file() || !restore.is_file() {
                continue;
            }
            match program_major(&dump) {
                Some(found) if found == major => {
                    return Ok(Self {
                        pg_dump: dump,
                        pg_restore: restore,
                    })
                }
                Some(found) => seen.push(format!("{} ({found})", dump.display())),
                None => {}
            }
        }
        let seen = if seen.is_empty() {
            "none found".to_owned()
        } else {
            format!("found only {}", seen.join(", "))
        };
        anyhow::bail!(
            "pg_dump and pg_restore of PostgreSQL {major} (the server's version) are needed: {seen}; \
             install them with `apt-get install postgresql-client-{major}`"
        )
    }

    /// The tools for the server `conn` is connected to.
    pub async fn for_server(conn: &mut PgConnection) -> anyhow::Result<Self> {
        let major = server_major(conn).await?;
        tokio::task::spawn_blocking(move || Self::find(major)).await?
    }

    /// Runs `program` with `args` against `target`: what it wrote to
    /// standard output, or an error with its stderr.
    pub async fn run(
        &self,
        program: &Path,
        target: &Target,
        args: &[&str],
    ) -> anyhow::Result<Vec<u8>> {
        output_of(program, command_on(program, target, args).into()).await
    }

    /// Runs `pg_dump` on `target` with `args`, its standard output handed to
    /// `sink` as it comes (never held whole); fails with its stderr.
    /// Blocking: call it off the async runtime.
    pub fn dump_into<T>(
        &self,
        target: &Target,
        args: &[&str],
        sink: impl FnOnce(&mut dyn Read) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let mut child = command_on(&self.pg_dump, target, args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("running {}", self.pg_dump.display()))?;
        let (mut stdout, mut stderr) = (
            child.stdout.take().expect("stdout is piped"),
            child.stderr.take().expect("stderr is piped"),
        );
        let errors = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        let sunk = sink(&mut stdout);
        if sunk.is_err() {
            let _ = child.kill();
        }
        drop(stdout);
        let status = child.wait().context("waiting for pg_dump")?;
        let errors = errors.join().unwrap_or_default();
        let value = sunk?;
        if !status.success() {
            anyhow::bail!("pg_dump failed: {}", errors.trim());
        }
        Ok(value)
    }

    /// Reads an archive with `pg_restore` and no database: what it writes
    /// (a table of contents, or the statements it would run) to standard
    /// output.
    pub async fn read_archive(&self, args: &[&str]) -> anyhow::Result<Vec<u8>> {
        let mut command = tokio::process::Command::new(&self.pg_restore);
        command.args(args).env_remove("PGPASSWORD");
        output_of(&self.pg_restore, command).await
    }
}

/// `program` with `args` against `target`, with the target's password (if
/// any) in its environment and never one inherited.
fn command_on(program: &Path, target: &Target, args: &[&str]) -> std::process::Command {
    let mut command = std::process::Command::new(program);
    command
        .arg(format!("--dbname={}", target.uri))
        .args(args)
        .env_remove("PGPASSWORD");
    if let Some(password) = &target.password {
        command.env("PGPASSWORD", password);
    }
    command
}

/// Runs `command` to its end: its standard output, or an error with what it
/// wrote to standard error.
async fn output_of(
    program: &Path,
    mut command: tokio::process::Command,
) -> anyhow::Result<Vec<u8>> {
    let output = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output()
        .await
        .with_context(|| format!("running {}", program.display()))?;
    if !output.status.success() {
        let name = program.file_name().unwrap_or_default().to_string_lossy();
        anyhow::bail!(
            "{name} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(output.stdout)
}

pub async fn server_major(conn: &mut PgConnection) -> Result<u32, sqlx::Error> {
    let number: i32 =
        sqlx::query_scalar("SELECT current_setting('server_version_num')::int / 10000")
            .fetch_one(conn)
            .await?;
    Ok(u32::try_from(number).unwrap_or(0))
}

/// Where a tool connects: a libpq URI without the password, and the password.
pub struct Target {
    uri: String,
    password: Option<String>,
}

impl Target {
    /// The admin role of `admin_url` on `database` at `host:port`.
    pub fn admin_on(
        admin_url: &str,
        host: &str,
        port: u16,
        database: &str,
    ) -> anyhow::Result<Self> {
        let mut url = Url::parse(admin_url).context("DATABASE_URL is not a valid URL")?;
        let password = url.password().map(percent_decode).transpose()?;
        let _ = url.set_password(None);
        url.set_host(Some(host)).context("clinic database host")?;
        let _ = url.set_port(Some(port));
        url.set_path(&format!("/{database}"));
        let kept: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(key, _)| LIBPQ_PARAMETERS.contains(&key.as_ref()))
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        url.set_query(None);
        if !kept.is_empty() {
            url.query_pairs_mut().extend_pairs(kept);
        }
        Ok(Self {
            uri: url.to_string(),
            password,
        })
    }
}

fn percent_decode(text: &str) -> anyhow::Result<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3])?;
            out.push(u8::from_str_radix(hex, 16).context("bad percent escape in DATABASE_URL")?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Ok(String::from_utf8(out)?)
}

fn candidate_dirs() -> Vec<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default();
    let mut debian: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|dirs| dirs.flatten().map(|d| d.path().join("bin")).collect())
        .unwrap_or_default();
    debian.sort();
    debian.reverse();
    on_path.into_iter().chain(debian).collect()
}

/// The major version `program --version` reports ("pg_dump (PostgreSQL) 15.4").
fn program_major(program: &Path) -> Option<u32> {
    let output = std::process::Command::new(program)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .ok()?;
    parse_major(&String::from_utf8_lossy(&output.stdout))
}

fn parse_major(version: &str) -> Option<u32> {
    let number = version
        .split_whitespace()
        .find(|w| w.starts_with(|c: char| c.is_ascii_digit()))?;
    let digits: String = number.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_read_from_the_tools_banner() {
        assert_eq!(
            parse_major("pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"),
            Some(15)
        );
        assert_eq!(parse_major("pg_restore (PostgreSQL) 17beta1"), Some(17));
        assert_eq!(parse_major("no version here"), None);
        assert_eq!(parse_major("pg_dump (PostgreSQL) 16.2"), Some(16));
    }

    #[test]
    fn the_password_leaves_the_url_and_sqlx_parameters_are_dropped() {
        let target = Target::admin_on(
            "postgres://admin:p%40ss@db.internal:5432/postgres?sslmode=require&statement-cache-capacity=10",
            "db2.internal",
            5433,
            "mp_clinic_x",
        )
        .unwrap();
        assert_eq!(target.password.as_deref(), Some("p@ss"));
        assert_eq!(
            target.uri,
            "postgres://admin@db2.internal:5433/mp_clinic_x?sslmode=require"
        );
    }
}
