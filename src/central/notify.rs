//! Change notices between the instances sharing one central database: what
//! changed (clinic state, clinic placement, staff account), sent with
//! PostgreSQL `NOTIFY` on [`CHANNEL`] by whoever makes the change (API,
//! command line, operations), received by every `serve` instance's listener
//! (`crate::coherence`), which drops what its caches hold about it.
//!
//! A notice is sent on the connection or transaction that makes the change,
//! so it is delivered when (and only if) the change commits. Its payload is
//! `<kind>:<uuid>`: no name, email or anything personal.

use sqlx::PgExecutor;
use uuid::Uuid;

use crate::tenancy::naming::ClinicId;

/// The `LISTEN`/`NOTIFY` channel, in each central database.
pub const CHANNEL: &str = "medicalpro_changes";

/// One change other instances must not serve stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The clinic was suspended, activated, closed, deleted, provisioned or
    /// removed: its cached state is dropped.
    Clinic(ClinicId),
    /// The clinic's database moved or was replaced (restore, `clinic
    /// move`): its connections are closed and its placement read again.
    Placement(ClinicId),
    /// A staff account was deactivated, reactivated, changed role or
    /// password, or deleted: its cached standing is dropped.
    Account(Uuid),
}

const CLINIC: &str = "clinic";
const PLACEMENT: &str = "placement";
const ACCOUNT: &str = "account";

impl Change {
    /// `<kind>:<uuid>`, as sent.
    pub fn payload(&self) -> String {
        let (kind, id) = match self {
            Change::Clinic(id) => (CLINIC, id.0),
            Change::Placement(id) => (PLACEMENT, id.0),
            Change::Account(id) => (ACCOUNT, *id),
        };
        format!("{kind}:{id}")
    }

    /// The change a payload names; `None` for one this release does not
    /// know (a newer instance's), which the listener ignores.
    pub fn parse(payload: &str) -> Option<Self> {
        let (kind, id) = payload.split_once(':')?;
        let id = Uuid::parse_str(id).ok()?;
        match kind {
            CLINIC => Some(Change::Clinic(ClinicId(id))),
            PLACEMENT => Some(Change::Placement(ClinicId(id))),
            ACCOUNT => Some(Change::Account(id)),
            _ => None,
        }
    }
}

/// Sends `change` on `conn`: inside a transaction, it is delivered at
/// commit (and not at all on rollback).
pub async fn send<'c>(conn: impl PgExecutor<'c>, change: Change) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(change.payload())
        .execute(conn)
        .await?;
    Ok(())
}

/// Sends one [`Change::Account`] per id, in one statement.
pub async fn send_accounts<'c>(conn: impl PgExecutor<'c>, ids: &[Uuid]) -> Result<(), sqlx::Error> {
    if ids.is_empty() {
        return Ok(());
    }
    let payloads: Vec<String> = ids
        .iter()
        .map(|id| Change::Account(*id).payload())
        .collect();
    sqlx::query("SELECT pg_notify($1, payload) FROM unnest($2::text[]) AS payload")
        .bind(CHANNEL)
        .bind(&payloads)
        .execute(conn)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_and_name_only_a_kind_and_an_id() {
        let id = Uuid::new_v4();
        for change in [
            Change::Clinic(ClinicId(id)),
            Change::Placement(ClinicId(id)),
            Change::Account(id),
        ] {
            let payload = change.payload();
            assert_eq!(Change::parse(&payload), Some(change));
            assert!(payload.ends_with(&format!(":{id}")), "{payload}");
        }
        assert_eq!(
            Change::Clinic(ClinicId(id)).payload(),
            format!("clinic:{id}")
        );
    }

    #[test]
    fn unknown_or_malformed_payloads_are_ignored() {
        let id = Uuid::new_v4();
        assert_eq!(Change::parse(&format!("server:{id}")), None);
        assert_eq!(Change::parse("clinic:not-a-uuid"), None);
        assert_eq!(Change::parse("clinic"), None);
        assert_eq!(Change::parse(""), None);
    }
}
