//! The clinic template database, `<prefix>_template`: an empty clinic at the
//! newest migration with the audit trail installed, which new clinic
//! databases copy (`CREATE DATABASE ... TEMPLATE`) instead of running every
//! migration. Its name is outside the `<prefix>_clinic_` pattern on purpose:
//! what lists clinic databases by name never counts it.
//!
//! - Its objects, the audit trail included, are created by a dedicated role
//!   of the same name (NOLOGIN); the database itself belongs to the admin
//!   role. In a copy, `REASSIGN OWNED BY <template role> TO <clinic owner>`
//!   hands every object to the clinic's owner role (`tenancy::ddl`). (Were
//!   the template role to own the template database, that command would
//!   hand over the template itself: it is a shared object.)
//! - The database comment records a fingerprint of the clinic migrations
//!   (versions and checksums) and the audit trail schema, written last. A
//!   template without the current fingerprint is stale (or half built) and
//!   never copied: it is rebuilt, and until then clinics are migrated.
//! - `CREATE DATABASE ... TEMPLATE` fails while another session is connected
//!   to the template. A session-level advisory lock on the admin connection's
//!   database orders the two uses: copies take it shared, a rebuild takes it
//!   exclusively. Both only try it: a provisioning never waits for a rebuild,
//!   it migrates instead.

use sha2::{Digest, Sha256};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};

use crate::clinic::audit as clinic_audit;
use crate::config::DbPrefix;
use crate::migrations;
use crate::tenancy::ddl::{self, run};
use crate::tenancy::naming::quote_ident;

/// Advisory lock class of the template (key 2 is a hash of its name).
const LOCK_CLASS: i32 = 7312;

/// Who owns what in a copy; part of the fingerprint, so that a template
/// laid out otherwise is rebuilt.
const LAYOUT: &str = "objects owned by the template role, handed to the clinic owner";

/// The template database of a prefix, and the role that owns its objects.
pub struct Template {
    name: String,
}

impl Template {
    pub fn new(prefix: &DbPrefix) -> Self {
        Self {
            name: format!("{}_template", prefix.as_str()),
        }
    }

    /// Both the database and its objects' owner role.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What the template's comment says when it is current.
    pub fn fingerprint() -> String {
        fingerprint_of(
            migrations::CLINIC.iter().map(|m| (m.version, &*m.checksum)),
            &[clinic_audit::SCHEMA, LAYOUT],
        )
    }

    /// Whether the template exists with the current fingerprint.
    pub async fn is_current(&self, admin: &mut PgConnection) -> Result<bool, sqlx::Error> {
        let comment: Option<Option<String>> = sqlx::query_scalar(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1",
        )
        .bind(&self.name)
        .fetch_optional(admin)
        .await?;
        Ok(comment.flatten() == Some(Self::fingerprint()))
    }

    /// Takes the lock shared when the template is current: the caller may
    /// then copy it, and must [`unlock_shared`](Self::unlock_shared) after
    /// (or close the session). `false`: migrate instead.
    pub async fn lock_for_copy(&self, admin: &mut PgConnection) -> Result<bool, sqlx::Error> {
        let locked: bool =
            sqlx::query_scalar("SELECT pg_try_advisory_lock_shared($1, hashtext($2))")
                .bind(LOCK_CLASS)
                .bind(&self.name)
                .fetch_one(&mut *admin)
                .await?;
        if !locked {
            return Ok(false);
        }
        if self.is_current(admin).await? {
            return Ok(true);
        }
        self.unlock_shared(admin).await?;
        Ok(false)
    }

    pub async fn unlock_shared(&self, admin: &mut PgConnection) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT pg_advisory_unlock_shared($1, hashtext($2))")
            .bind(LOCK_CLASS)
            .bind(&self.name)
            .execute(admin)
            .await?;
        Ok(())
    }

    /// Rebuilds the template unless it is current or in use (copied or
    /// rebuilt by another session): `true` when it is current afterwards.
    pub async fn rebuild(
        &self,
        admin: &mut PgConnection,
        admin_options: &PgConnectOptions,
    ) -> Result<bool, sqlx::Error> {
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1, hashtext($2))")
            .bind(LOCK_CLASS)
            .bind(&self.name)
            .fetch_one(&mut *admin)
            .await?;
        if !locked {
            return Ok(false);
        }
        let built = match self.is_current(admin).await {
            Ok(true) => Ok(()),
            Ok(false) => self.build(admin, admin_options).await,
            Err(error) => Err(error),
        };
        let unlocked = sqlx::query("SELECT pg_advisory_unlock($1, hashtext($2))")
            .bind(LOCK_CLASS)
            .bind(&self.name)
            .execute(&mut *admin)
            .await;
        built?;
        unlocked?;
        Ok(true)
    }

    async fn build(
        &self,
        admin: &mut PgConnection,
        admin_options: &PgConnectOptions,
    ) -> Result<(), sqlx::Error> {
        let name = quote_ident(&self.name);
        ddl::recreate_template(admin, &self.name).await?;
        let mut conn = ddl::admin_session(admin_options.clone().database(&self.name))
            .connect()
            .await?;
        let granted = ddl::open_template_schema(&mut conn, &self.name).await;
        let _ = conn.close().await;
        granted?;
        let mut as_role =
            ddl::owner_session(admin_options.clone().database(&self.name), &self.name)
                .connect()
                .await?;
        let migrated = fill(&mut as_role).await;
        let _ = as_role.close().await;
        migrated?;
        run(
            admin,
            &format!("COMMENT ON DATABASE {name} IS '{}'", Self::fingerprint()),
        )
        .await?;
        tracing::info!(template = %self.name, "clinic template database built");
        Ok(())
    }
}

/// As the template role: the clinic migrations, then the audit trail.
async fn fill(as_role: &mut PgConnection) -> Result<(), sqlx::Error> {
    migrations::run_on(&migrations::CLINIC, &mut *as_role)
        .await
        .map_err(|error| sqlx::Error::Migrate(Box::new(error)))?;
    ddl::install_audit_trail(as_role, "public").await
}

/// `medicalpro clinic template v<newest version> <hash>`, the hash over
/// every migration's version and checksum and the other `scripts` applied.
fn fingerprint_of<'a>(
    migrations: impl Iterator<Item = (i64, &'a [u8])>,
    scripts: &[&str],
) -> String {
    let mut hasher = Sha256::new();
    let mut newest = 0;
    for (version, checksum) in migrations {
        hasher.update(version.to_be_bytes());
        hasher.update(checksum);
        newest = newest.max(version);
    }
    for script in scripts {
        hasher.update(script.as_bytes());
    }
    let hex = crate::crypto::hex(&hasher.finalize()[..8]);
    format!("medicalpro clinic template v{newest} {hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fingerprint_names_the_newest_version_and_changes_with_any_input() {
        let base = [(1, &b"one"[..]), (2, &b"two"[..])];
        let fingerprint = fingerprint_of(base.into_iter(), &["trail"]);
        assert!(fingerprint.starts_with("medicalpro clinic template v2 "));
        assert!(!fingerprint.contains('\''));
        let edited = [(1, &b"one"[..]), (2, &b"tw0"[..])];
        let added = [(1, &b"one"[..]), (2, &b"two"[..]), (3, &b"three"[..])];
        for other in [
            fingerprint_of(edited.into_iter(), &["trail"]),
            fingerprint_of(base.into_iter(), &["trail!"]),
            fingerprint_of(base.into_iter(), &["trail", "layout"]),
            fingerprint_of(added.into_iter(), &["trail"]),
        ] {
            assert_ne!(other, fingerprint);
        }
        assert!(Template::fingerprint().starts_with(&format!(
            "medicalpro clinic template v{} ",
            migrations::latest_version(&migrations::CLINIC)
        )));
    }
}
