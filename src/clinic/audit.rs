//! The clinic audit trail (`audit_events`, in the clinic's own database):
//! who read or changed which patient data, when, from where. A change
//! records its event in its own transaction ([`record`]), into the
//! append-only, hash-chained `audit_events`, or, when another transaction
//! is extending the chain at that moment, into `audit_events_pending`
//! until a [`seal`] (see `audit_schema.sql`). Reads record theirs in
//! batches ([`record_all`], by `tenancy::read_trail`), pending, before
//! their answer leaves. [`verify_chain`] recomputes the chain.

use futures_util::TryStreamExt;
use serde::Serialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use sqlx::postgres::PgArguments;
use sqlx::query::Query;
use sqlx::{PgConnection, Postgres, Row};
use uuid::Uuid;

use crate::auth::roles::Role;

/// The admin-applied schema of the trail.
pub const SCHEMA: &str = include_str!("audit_schema.sql");

/// Who is acting, from the verified request.
#[derive(Debug, Clone)]
pub struct Actor {
    pub user_id: Uuid,
    pub role: Role,
    pub request_id: Option<String>,
    pub client_addr: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Read,
    List,
    Create,
    Update,
    Delete,
    Export,
    Erase,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::List => "list",
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "delete",
            Action::Export => "export",
            Action::Erase => "erase",
        }
    }
}

/// One access to record.
#[derive(Debug, Clone)]
pub struct Entry {
    pub action: Action,
    /// `patient`, `appointment`, `medical_record`, `consent`, `document`, ...
    pub resource_type: &'static str,
    pub resource_id: Option<Uuid>,
    /// The patient the data is about, when there is one.
    pub patient_id: Option<Uuid>,
    /// Names of changed fields (never values).
    pub changed_fields: Vec<String>,
    /// For lists, the query (filters, page) with free text left out.
    pub details: Value,
}

impl Entry {
    pub fn new(action: Action, resource_type: &'static str) -> Self {
        Entry {
            action,
            resource_type,
            resource_id: None,
            patient_id: None,
            changed_fields: Vec::new(),
            details: Value::Object(Default::default()),
        }
    }

    pub fn resource(mut self, id: Uuid) -> Self {
        self.resource_id = Some(id);
        self
    }

    pub fn patient(mut self, id: Uuid) -> Self {
        self.patient_id = Some(id);
        self
    }

    pub fn fields<S: Into<String>>(mut self, fields: impl IntoIterator<Item = S>) -> Self {
        self.changed_fields = fields.into_iter().map(Into::into).collect();
        self
    }

    pub fn details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }
}

/// Records one event, its arguments the query's only ones.
const RECORD: &str = "SELECT audit_events_append($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";

/// Binds the arguments of [`RECORD`].
fn bind_event<'q>(
    query: Query<'q, Postgres, PgArguments>,
    actor: &'q Actor,
    entry: &'q Entry,
) -> Query<'q, Postgres, PgArguments> {
    query
        .bind(actor.user_id)
        .bind(actor.role.as_str())
        .bind(entry.action.as_str())
        .bind(entry.resource_type)
        .bind(entry.resource_id)
        .bind(entry.patient_id)
        .bind(&actor.request_id)
        .bind(&actor.client_addr)
        .bind(&entry.changed_fields)
        .bind(&entry.details)
}

/// Records one event within the caller's transaction (the database stamps
/// its time). Returns whether it is chained already; if not, it is pending
/// until a [`seal`] after the caller's commit.
pub async fn record(
    conn: &mut PgConnection,
    actor: &Actor,
    entry: &Entry,
) -> Result<bool, sqlx::Error> {
    let row = bind_event(sqlx::query(RECORD), actor, entry)
        .fetch_one(conn)
        .await?;
    row.try_get(0)
}

/// Events of several requests as [`record_all`] takes them.
pub fn batch(events: &[(Actor, Entry)]) -> Value {
    events
        .iter()
        .map(|(actor, entry)| {
            json!({
                "actor_user_id": actor.user_id,
                "actor_role": actor.role.as_str(),
                "action": entry.action.as_str(),
                "resource_type": entry.resource_type,
                "resource_id": entry.resource_id,
                "patient_id": entry.patient_id,
                "request_id": actor.request_id,
                "client_addr": actor.client_addr,
                "changed_fields": entry.changed_fields,
                "details": entry.details,
            })
        })
        .collect()
}

/// Records a [`batch`] of events in one statement, in their order, all
/// pending: committed together (one flush for all), chained later by a
/// [`seal`]. Run it as its own transaction.
pub async fn record_all(conn: &mut PgConnection, batch: Value) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT audit_events_append_all($1)")
        .bind(batch)
        .execute(conn)
        .await?;
    Ok(())
}

/// Rows one call to `audit_events_seal` chains at most.
const SEAL_BATCH: i32 = 10_000;

/// One call of the SQL sealer, unless the chain is closed: a database being
/// moved away (`ops::moves`) has its owner's INSERT on `audit_events`
/// revoked, and its pending events are chained on the move's target.
const SEAL: &str = "SELECT CASE WHEN pg_catalog.has_table_privilege(c.relowner, c.oid, 'INSERT')
                        THEN audit_events_seal($1) ELSE 0 END
                      FROM pg_catalog.pg_class c
                     WHERE c.oid = 'audit_events'::pg_catalog.regclass";

/// Chains every committed pending event, a batch per call of the SQL
/// sealer; returns how many were sealed (none where the chain is closed).
pub async fn seal(conn: &mut PgConnection) -> Result<u64, sqlx::Error> {
    let mut sealed = 0u64;
    loop {
        let batch: i32 = sqlx::query_scalar(SEAL)
            .bind(SEAL_BATCH)
            .fetch_one(&mut *conn)
            .await?;
        sealed += u64::try_from(batch).unwrap_or(0);
        if batch < SEAL_BATCH {
            return Ok(sealed);
        }
    }
}

/// The first link that does not hold, if any.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BrokenLink {
    /// The id of the first row whose link is broken (or where a row is missing).
    pub id: i64,
    pub reason: String,
}

/// Result of walking the whole chain.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChainReport {
    pub events: i64,
    pub broken: Option<BrokenLink>,
}

#[derive(sqlx::FromRow)]
struct ChainRow {
    id: i64,
    occurred_micros: i64,
    actor_user_id: Option<String>,
    actor_role: Option<String>,
    action: String,
    resource_type: String,
    resource_id: Option<String>,
    patient_id: Option<String>,
    request_id: Option<String>,
    client_addr: Option<String>,
    changed_fields: String,
    details: String,
    prev_hash: Vec<u8>,
    hash: Vec<u8>,
}

impl ChainRow {
    /// The same payload as `audit_event_payload` in SQL, rebuilt here.
    fn payload(&self) -> String {
        [
            self.id.to_string(),
            self.occurred_micros.to_string(),
            self.actor_user_id.clone().unwrap_or_default(),
            self.actor_role.clone().unwrap_or_default(),
            self.action.clone(),
            self.resource_type.clone(),
            self.resource_id.clone().unwrap_or_default(),
            self.patient_id.clone().unwrap_or_default(),
            self.request_id.clone().unwrap_or_default(),
            self.client_addr.clone().unwrap_or_default(),
            self.changed_fields.clone(),
            self.details.clone(),
        ]
        .join("\u{1f}")
    }
}

/// Walks the chain in order, recomputing every hash.
pub async fn verify_chain(conn: &mut PgConnection) -> Result<ChainReport, sqlx::Error> {
    verify_chain_after(conn, None).await
}

/// Walks the rows after `after` (a row's id and hash, known good), or the
/// whole chain, in order, recomputing every hash; `events` counts the rows
/// walked. The rows are streamed, one at a time: a long trail is never held
/// in memory.
pub async fn verify_chain_after(
    conn: &mut PgConnection,
    after: Option<(i64, Vec<u8>)>,
) -> Result<ChainReport, sqlx::Error> {
    let (start, mut previous) = after.unwrap_or((0, Vec::new()));
    let mut rows = sqlx::query_as::<_, ChainRow>(
        "SELECT id, (extract(epoch FROM occurred_at) * 1000000)::bigint AS occurred_micros,
                actor_user_id::text, actor_role, action, resource_type, resource_id::text,
                patient_id::text, request_id, client_addr,
                array_to_string(changed_fields, ',') AS changed_fields, details::text AS details,
                prev_hash, hash
           FROM audit_events WHERE id > $1 ORDER BY id",
    )
    .bind(start)
    .fetch(conn);
    let mut events = 0;
    let mut expected_id = start + 1;
    while let Some(row) = rows.try_next().await? {
        events += 1;
        let broken = |reason: &str| {
            Some(BrokenLink {
                id: row.id,
                reason: reason.to_owned(),
            })
        };
        let failure = if row.id != expected_id {
            broken(&format!("row {expected_id} is missing"))
        } else if row.prev_hash != previous {
            broken("does not link to the previous row")
        } else {
            let mut hasher = Sha256::new();
            hasher.update(&row.prev_hash);
            hasher.update(row.payload().as_bytes());
            (hasher.finalize().as_slice() != row.hash.as_slice()).then(|| BrokenLink {
                id: row.id,
                reason: "content does not match its hash".into(),
            })
        };
        if failure.is_some() {
            return Ok(ChainReport {
                events,
                broken: failure,
            });
        }
        previous = row.hash;
        expected_id += 1;
    }
    Ok(ChainReport {
        events,
        broken: None,
    })
}

/// An audit event as `GET /audit` shows it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub id: i64,
    pub occurred_at: chrono::DateTime<chrono::Utc>,
    pub actor_user_id: Option<Uuid>,
    pub actor_role: Option<String>,
    pub action: String,
    pub resource_type: String,
    pub resource_id: Option<Uuid>,
    pub patient_id: Option<Uuid>,
    pub request_id: Option<String>,
    pub client_addr: Option<String>,
    pub changed_fields: Vec<String>,
    pub details: Value,
}

/// Which events to list.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub patient_id: Option<Uuid>,
    pub user_id: Option<Uuid>,
    pub action: Option<String>,
    pub from: Option<chrono::DateTime<chrono::Utc>>,
    pub to: Option<chrono::DateTime<chrono::Utc>>,
}

const EVENT_COLUMNS: &str = "id, occurred_at, actor_user_id, actor_role, action, resource_type, \
    resource_id, patient_id, request_id, client_addr, changed_fields, details";

const EVENT_FILTER: &str = "($1::uuid IS NULL OR patient_id = $1)
    AND ($2::uuid IS NULL OR actor_user_id = $2)
    AND ($3::text IS NULL OR action = $3)
    AND ($4::timestamptz IS NULL OR occurred_at >= $4)
    AND ($5::timestamptz IS NULL OR occurred_at < $5)";

/// Events matching `filter`, newest first, and how many match in all.
pub async fn list(
    conn: &mut PgConnection,
    filter: &Filter,
    page: super::Page,
) -> Result<(Vec<Event>, i64), sqlx::Error> {
    let statement = super::list_statement(
        "audit_events",
        EVENT_FILTER,
        &format!("SELECT {EVENT_COLUMNS} FROM audit_events"),
        "ORDER BY id DESC LIMIT $6 OFFSET $7",
    );
    let query = sqlx::query(&statement)
        .bind(filter.patient_id)
        .bind(filter.user_id)
        .bind(&filter.action)
        .bind(filter.from)
        .bind(filter.to)
        .bind(page.limit)
        .bind(page.offset);
    super::fetch_list(conn, query).await
}

/// Every event about one patient, oldest first (for the GDPR export).
pub async fn about_patient(
    conn: &mut PgConnection,
    patient_id: Uuid,
) -> Result<Vec<Event>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {EVENT_COLUMNS} FROM audit_events WHERE patient_id = $1 ORDER BY id"
    ))
    .bind(patient_id)
    .fetch_all(conn)
    .await
}
