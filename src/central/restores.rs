//! `audit_chain_restores`: each restore of a clinic's database, with the
//! head of the audit chain it put in place (see `compliance`).

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

/// A restore as `audit verify` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct ChainRestore {
    /// Its `audit.restored` platform event: anchors with a greater id are
    /// newer than the restore.
    #[serde(skip)]
    pub audit_log_id: i64,
    pub restored_at: DateTime<Utc>,
    pub operator: String,
    pub backup_file: String,
    pub backup_sha256: String,
    /// The last chained event of the restored trail (`None`: it was empty).
    pub head_id: Option<i64>,
    /// Its hash, in hexadecimal.
    pub head_hash: Option<String>,
}

impl ChainRestore {
    /// `restored from <file> by <operator> at <time>; chain continues from id N`.
    pub fn describe(&self) -> String {
        let continues = match self.head_id {
            Some(id) => format!("chain continues from id {id}"),
            None => "the restored chain was empty".to_owned(),
        };
        format!(
            "restored from {} (sha256 {}) by {} at {}; {continues}",
            self.backup_file,
            self.backup_sha256,
            self.operator,
            self.restored_at.format("%Y-%m-%d %H:%M:%S UTC"),
        )
    }
}

/// What a restore records: the file, who ran it, the restored head.
pub struct NewChainRestore<'a> {
    pub company_id: Uuid,
    pub operator: &'a str,
    pub backup_file: &'a str,
    pub backup_sha256: &'a str,
    /// (id, hash) of the restored trail's last chained event.
    pub head: Option<(i64, String)>,
}

/// Records a restore and its `audit.restored` platform event, in one
/// statement.
pub async fn record(
    central: &PgPool,
    restore: &NewChainRestore<'_>,
) -> Result<ChainRestore, sqlx::Error> {
    let (head_id, head_hash) = restore.head.clone().unzip();
    sqlx::query_as(
        "WITH event AS (
             INSERT INTO audit_logs (action, company_id, details)
             VALUES ('audit.restored', $1, $7) RETURNING id
         )
         INSERT INTO audit_chain_restores
             (company_id, audit_log_id, operator, backup_file, backup_sha256, head_id, head_hash)
         SELECT $1, event.id, $2, $3, $4, $5, $6 FROM event
         RETURNING audit_log_id, restored_at, operator, backup_file, backup_sha256, head_id, head_hash",
    )
    .bind(restore.company_id)
    .bind(restore.operator)
    .bind(restore.backup_file)
    .bind(restore.backup_sha256)
    .bind(head_id)
    .bind(&head_hash)
    .bind(json!({
        "operator": restore.operator,
        "backupFile": restore.backup_file,
        "backupSha256": restore.backup_sha256,
        "headId": head_id,
        "headHash": head_hash,
    }))
    .fetch_one(central)
    .await
}

/// The clinic's most recent restore, if it was ever restored.
pub async fn latest(
    central: &PgPool,
    company_id: Uuid,
) -> Result<Option<ChainRestore>, sqlx::Error> {
    sqlx::query_as(
        "SELECT audit_log_id, restored_at, operator, backup_file, backup_sha256, head_id, head_hash
           FROM audit_chain_restores WHERE company_id = $1 ORDER BY id DESC LIMIT 1",
    )
    .bind(company_id)
    .fetch_optional(central)
    .await
}
