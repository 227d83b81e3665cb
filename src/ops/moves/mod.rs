//! `medicalpro clinic move ID --server S`: a clinic's database moved to
//! another PostgreSQL server by logical replication, with its data and its
//! audit chain intact, a write freeze of a few seconds, and reads answered
//! throughout.
//!
//! The steps, each recorded in central `clinic_moves` once done:
//! 1. `prepared`: on the target, the clinic's roles and database made by
//!    `tenancy::ddl` (same names, a new login password, sealed), the schema
//!    by the product's clinic migrations and audit trail, as the owner role;
//!    nothing of the source's definitions is used.
//! 2. `subscribed`: a publication of the product's tables on the source, a
//!    subscription on the target (`copy_data = true`), both as the admin.
//! 3. `synced`: every table copied and the target caught up.
//! 4. `frozen`: on the source, the login role's INSERT/UPDATE/DELETE
//!    revoked (writes answer 503 `clinic_unavailable`) and the audit chain
//!    closed (the owner's INSERT on `audit_events` revoked). Reads go on,
//!    their events recorded pending (`audit_events_pending`), which
//!    replication carries to the target, whose sealer chains them. Both are
//!    grants in the catalog, so they hold whatever becomes of this process:
//!    nothing but pending events can change the source any more.
//! 5. `verified`: the target caught up, every sequence copied (the pending
//!    events' one ahead by [`cutover::PENDING_HEADROOM`], so that the
//!    source's late pending events never collide with the target's own),
//!    row counts (pending events aside) and the audit chain's head compared.
//! 6. `switched`: the placement (server, host, port, sealed password) in
//!    central, in one transaction with the step and the change notice:
//!    every instance closes the clinic's connections and serves it from the
//!    target, the source still serving reads until then.
//! 7. `done`: the source drained (waiting, at most [`DRAIN`], until no
//!    session of the login role is left on it, every instance told), then
//!    cut off (its login password replaced and its leftover sessions ended:
//!    an instance that missed the notice finds its password refused, reads
//!    the placement again and connects to the target), the target caught
//!    up a last time (the pending events of the last reads on the source),
//!    subscription, publication and slot dropped; the source database
//!    dropped with `--drop-source`, else kept as `<prefix>_moved_<move id>`
//!    (63-byte names leave no room for the clinic id and a time: both are
//!    in `clinic_moves` and the database's comment) with its login role
//!    `NOLOGIN` and its chain closed (its last pending events are chained
//!    on the target).
//!
//! Until the switch the clinic is served from the source. A move that fails
//! before the switch is rolled back at once (target dropped, source's
//! grants and password restored); one that was interrupted (the process
//! died) is rolled back when run again, then made afresh; one interrupted
//! after the switch is finished when run again. One move of a clinic at a
//! time (an advisory lock in central).
//!
//! Every server is reached with `DATABASE_URL`'s admin user and password
//! (see `ops::servers`); the subscription connects to the source with them,
//! at the host and port recorded in central, which the target server must
//! be able to reach. Both servers need `wal_level = logical`, and the admin
//! must be superuser (or hold the rights to create publications and
//! subscriptions).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::json;
use sqlx::postgres::PgConnectOptions;
use sqlx::Connection;
use uuid::Uuid;

mod cutover;
mod replication;
pub mod tier;

use cutover::{compare, copy_sequences, finish, freeze, prepare, switch, undo};
use replication::{catch_up, subscribe, wait_synced};

use super::servers::{self, ServerRow};
use super::{connect, Fleet};
use crate::crypto::random_token;
use crate::migrations;
use crate::tenancy::ddl::TenantRoles;
use crate::tenancy::naming::ClinicId;

/// Advisory lock class of a clinic being moved (the key: the clinic id's hash).
const MOVE_LOCK: i32 = 7331;

/// How often the replication state is polled.
const POLL: Duration = Duration::from_millis(100);

/// How long the target may take to catch up once writes are frozen.
const CATCH_UP: Duration = Duration::from_secs(60);

/// How long, after the switch, the source waits for the instances told to
/// close their connections to it (their requests under way end first)
/// before it is cut off regardless.
pub const DRAIN: Duration = Duration::from_secs(10);

/// The steps of a move, in order; each is recorded once done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    Started,
    Prepared,
    Subscribed,
    Synced,
    Frozen,
    Verified,
    Switched,
    Done,
}

impl Step {
    /// Every step, in order.
    pub const ALL: [Step; 8] = [
        Step::Started,
        Step::Prepared,
        Step::Subscribed,
        Step::Synced,
        Step::Frozen,
        Step::Verified,
        Step::Switched,
        Step::Done,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Step::Started => "started",
            Step::Prepared => "prepared",
            Step::Subscribed => "subscribed",
            Step::Synced => "synced",
            Step::Frozen => "frozen",
            Step::Verified => "verified",
            Step::Switched => "switched",
            Step::Done => "done",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|step| step.as_str() == text)
    }
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone)]
pub struct MoveOptions {
    pub clinic: ClinicId,
    /// The target server, by id or name.
    pub server: String,
    /// Drop the source database and roles instead of keeping them.
    pub drop_source: bool,
    /// How long the initial copy may take.
    pub sync_timeout: Duration,
    /// Fault injection for tests: stop right after this step, as if the
    /// process had died there (nothing rolled back).
    pub fail_after: Option<Step>,
    /// Fault injection for tests only: the process sends itself SIGKILL
    /// right after this step is recorded (`medicalpro clinic move` sets it
    /// from `MEDICALPRO_MOVE_KILL_AFTER`).
    pub kill_after: Option<Step>,
}

impl MoveOptions {
    pub fn new(clinic: ClinicId, server: &str) -> Self {
        Self {
            clinic,
            server: server.to_owned(),
            drop_source: false,
            sync_timeout: Duration::from_secs(3600),
            fail_after: None,
            kill_after: None,
        }
    }
}

/// What a move did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Moved {
    pub clinic_id: Uuid,
    pub move_id: Uuid,
    pub from_server: Option<String>,
    pub to_server: String,
    /// Rows per table at the verification, the same on both sides (but for
    /// `audit_events_pending`, which the source's reads add to until it is
    /// cut off).
    pub rows: BTreeMap<String, i64>,
    /// The audit chain's last id at the switch.
    pub audit_head: Option<i64>,
    /// From the write freeze to the switch (reads answered throughout).
    pub freeze_ms: u64,
    /// How long reaching each step took, in order.
    pub steps_ms: Vec<(Step, u64)>,
    pub seconds: f64,
    /// The source database kept (`None`: dropped).
    pub source_kept_as: Option<String>,
    /// An interrupted earlier move rolled back first.
    pub rolled_back_earlier: bool,
    /// An interrupted earlier move past its switch, finished (nothing else done).
    pub finished_earlier: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum MoveError {
    #[error("the move stopped after step {0} (injected failure); run it again to finish")]
    Injected(Step),
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

impl From<sqlx::Error> for MoveError {
    fn from(error: sqlx::Error) -> Self {
        MoveError::Failed(error.into())
    }
}

/// One move: the clinic, where from, where to.
struct Plan {
    move_id: Uuid,
    clinic: ClinicId,
    database: String,
    roles: TenantRoles,
    source_server_id: Option<Uuid>,
    source_host: String,
    source_port: i32,
    target: ServerRow,
    target_password: String,
    target_password_sealed: Vec<u8>,
    drop_source: bool,
}

impl Plan {
    /// The publication, subscription and slot's name.
    fn replication_name(&self) -> String {
        format!("mp_move_{}", self.move_id.simple())
    }

    fn kept_name(&self, fleet: &Fleet) -> String {
        format!(
            "{}_moved_{}",
            fleet.settings.prefix.as_str(),
            self.move_id.simple()
        )
    }

    fn source_admin(&self, fleet: &Fleet) -> PgConnectOptions {
        fleet
            .databases
            .admin_on_server(&self.source_host, self.source_port)
    }

    fn target_admin(&self, fleet: &Fleet) -> PgConnectOptions {
        fleet
            .databases
            .admin_on_server(&self.target.host, self.target.port)
    }
}

/// Moves a clinic to another server (see the module's documentation).
pub async fn move_clinic(fleet: &Fleet, options: &MoveOptions) -> Result<Moved, MoveError> {
    let started = Instant::now();
    let id = options.clinic;
    let mut lock = connect(
        &fleet
            .databases
            .admin_options
            .clone()
            .database(&fleet.settings.prefix.central_database()),
    )
    .await?;
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1, hashtext($2))")
        .bind(MOVE_LOCK)
        .bind(id.0.to_string())
        .fetch_one(&mut lock)
        .await?;
    if !locked {
        let _ = lock.close().await;
        return Err(
            anyhow::anyhow!("a move of clinic {id} is under way in another process").into(),
        );
    }
    let result = move_locked(fleet, options, started).await;
    let _ = lock.close().await;
    result
}

async fn move_locked(
    fleet: &Fleet,
    options: &MoveOptions,
    started: Instant,
) -> Result<Moved, MoveError> {
    let id = options.clinic;
    let mut rolled_back_earlier = false;
    if let Some((plan, step)) = open_move(fleet, id).await? {
        if step >= Step::Switched {
            tracing::info!(clinic.id = %id, move.id = %plan.move_id, %step, "finishing an interrupted move");
            let kept = finish(fleet, &plan).await?;
            let mut moved = report(fleet, &plan, started, kept, BTreeMap::new(), None).await?;
            moved.finished_earlier = true;
            return Ok(moved);
        }
        tracing::info!(clinic.id = %id, move.id = %plan.move_id, %step, "rolling back an interrupted move");
        undo(fleet, &plan).await?;
        mark_rolled_back(fleet, &plan, "interrupted; rolled back by the next run").await?;
        rolled_back_earlier = true;
    }
    let plan = plan(fleet, options).await?;
    match run(fleet, &plan, options, started).await {
        Ok(mut moved) => {
            moved.rolled_back_earlier = rolled_back_earlier;
            Ok(moved)
        }
        Err(MoveError::Injected(step)) => Err(MoveError::Injected(step)),
        Err(error) => {
            let step = current_step(fleet, plan.move_id).await.ok().flatten();
            if step.is_some_and(|step| step >= Step::Switched) {
                // Served from the target already: run again to finish.
                return Err(error);
            }
            tracing::error!(clinic.id = %id, error = %format!("{error:#}"), "move failed, rolling back");
            match undo(fleet, &plan).await {
                Ok(()) => {
                    mark_rolled_back(fleet, &plan, &format!("{error:#}")).await?;
                    Err(error)
                }
                Err(undo_error) => Err(anyhow::anyhow!(
                    "{error:#}; rolling back failed too ({undo_error:#}): run the move again to roll it back"
                )
                .into()),
            }
        }
    }
}

/// Checks the clinic and the target, and records the new move.
async fn plan(fleet: &Fleet, options: &MoveOptions) -> Result<Plan, MoveError> {
    let id = options.clinic;
    let clinic = fleet.dedicated_clinic(id, "`clinic move`").await?;
    let target = servers::find(fleet, &options.server).await?;
    if !target.is_active {
        return Err(
            anyhow::anyhow!("server {} is drained: no clinic moves to it", target.name).into(),
        );
    }
    if target.host == clinic.db_host && target.port == clinic.db_port {
        return Err(anyhow::anyhow!("clinic {id} is already on server {}", target.name).into());
    }
    let (source_server_id, rotating): (Option<Uuid>, bool) = sqlx::query_as(
        "SELECT db_server_id, db_password_next_sealed IS NOT NULL FROM companies WHERE id = $1",
    )
    .bind(id.0)
    .fetch_one(&fleet.databases.central)
    .await?;
    if rotating {
        return Err(anyhow::anyhow!(
            "clinic {id}'s password is being rotated: finish `medicalpro keys rotate` first"
        )
        .into());
    }
    let latest = migrations::latest_version(&migrations::CLINIC);
    if clinic.schema_version != latest {
        return Err(anyhow::anyhow!(
            "clinic {id} is at schema version {}, this binary's is {latest}: run `medicalpro migrate` first",
            clinic.schema_version
        )
        .into());
    }
    let mut source = fleet
        .admin_on_server(&clinic.db_host, clinic.db_port)
        .await?;
    let wal_level: Result<String, sqlx::Error> =
        sqlx::query_scalar("SELECT current_setting('wal_level')")
            .fetch_one(&mut source)
            .await;
    let _ = source.close().await;
    let wal_level = wal_level?;
    if wal_level != "logical" {
        return Err(anyhow::anyhow!(
            "the clinic's server {}:{} runs with wal_level = {wal_level}: a move needs \
             wal_level = logical there (set it and restart that server)",
            clinic.db_host,
            clinic.db_port
        )
        .into());
    }
    let roles = TenantRoles::of(id, &fleet.settings.prefix);
    let mut admin = fleet.admin_on_server(&target.host, target.port).await?;
    let taken: Result<bool, sqlx::Error> = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)
             OR EXISTS (SELECT 1 FROM pg_roles WHERE rolname IN ($2, $3))",
    )
    .bind(&clinic.db_name)
    .bind(&roles.login)
    .bind(&roles.owner)
    .fetch_one(&mut admin)
    .await;
    let _ = admin.close().await;
    if taken? {
        return Err(anyhow::anyhow!(
            "server {} already has clinic {id}'s database or roles (a database kept by an earlier move \
             from it? drop that database and the roles {} and {} there first)",
            target.name,
            roles.login,
            roles.owner
        )
        .into());
    }
    let move_id = Uuid::new_v4();
    let target_password = random_token(32);
    let target_password_sealed = fleet
        .settings
        .keys
        .seal(target_password.as_bytes(), id.0.as_bytes());
    sqlx::query(
        "INSERT INTO clinic_moves (id, company_id, source_server_id, source_host, source_port,
                                   target_server_id, step, target_password_sealed, drop_source)
         VALUES ($1, $2, $3, $4, $5, $6, 'started', $7, $8)",
    )
    .bind(move_id)
    .bind(id.0)
    .bind(source_server_id)
    .bind(&clinic.db_host)
    .bind(clinic.db_port)
    .bind(target.id)
    .bind(&target_password_sealed)
    .bind(options.drop_source)
    .execute(&fleet.databases.central)
    .await?;
    Ok(Plan {
        move_id,
        clinic: id,
        database: clinic.db_name,
        roles,
        source_server_id,
        source_host: clinic.db_host,
        source_port: clinic.db_port,
        target,
        target_password,
        target_password_sealed,
        drop_source: options.drop_source,
    })
}

/// The clinic's unfinished move, if any, and its last step.
async fn open_move(fleet: &Fleet, id: ClinicId) -> Result<Option<(Plan, Step)>, MoveError> {
    type Row = (Uuid, Option<Uuid>, String, i32, Uuid, String, Vec<u8>, bool);
    let row: Option<Row> = sqlx::query_as(
        "SELECT id, source_server_id, source_host, source_port, target_server_id, step,
                target_password_sealed, drop_source
           FROM clinic_moves WHERE company_id = $1 AND finished_at IS NULL",
    )
    .bind(id.0)
    .fetch_optional(&fleet.databases.central)
    .await?;
    let Some((
        move_id,
        source_server_id,
        source_host,
        source_port,
        target_id,
        step,
        sealed,
        drop_source,
    )) = row
    else {
        return Ok(None);
    };
    let step = Step::parse(&step).ok_or_else(|| anyhow::anyhow!("unknown move step {step}"))?;
    let target = servers::find(fleet, &target_id.to_string()).await?;
    let target_password = fleet
        .settings
        .keys
        .open(&sealed, id.0.as_bytes())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| {
            anyhow::anyhow!("the move's sealed password cannot be opened with MASTER_KEY")
        })?;
    let database: String = sqlx::query_scalar("SELECT db_name FROM companies WHERE id = $1")
        .bind(id.0)
        .fetch_one(&fleet.databases.central)
        .await?;
    Ok(Some((
        Plan {
            move_id,
            clinic: id,
            database,
            roles: TenantRoles::of(id, &fleet.settings.prefix),
            source_server_id,
            source_host,
            source_port,
            target,
            target_password,
            target_password_sealed: sealed,
            drop_source,
        },
        step,
    )))
}

async fn current_step(fleet: &Fleet, move_id: Uuid) -> Result<Option<Step>, sqlx::Error> {
    let step: Option<String> = sqlx::query_scalar("SELECT step FROM clinic_moves WHERE id = $1")
        .bind(move_id)
        .fetch_optional(&fleet.databases.central)
        .await?;
    Ok(step.as_deref().and_then(Step::parse))
}

/// Records `step` as done, then stops there if a test asked to.
async fn advance(
    fleet: &Fleet,
    plan: &Plan,
    options: &MoveOptions,
    step: Step,
) -> Result<(), MoveError> {
    sqlx::query("UPDATE clinic_moves SET step = $2, updated_at = now() WHERE id = $1")
        .bind(plan.move_id)
        .bind(step.as_str())
        .execute(&fleet.databases.central)
        .await?;
    tracing::info!(clinic.id = %plan.clinic, move.id = %plan.move_id, %step, "move step done");
    checkpoint(options, step)
}

/// Where a test stops the move (see [`MoveOptions::fail_after`] and
/// [`MoveOptions::kill_after`]), once `step` is recorded.
fn checkpoint(options: &MoveOptions, step: Step) -> Result<(), MoveError> {
    if options.kill_after == Some(step) {
        tracing::warn!(%step, "killing this process, as a test asked");
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    }
    if options.fail_after == Some(step) {
        return Err(MoveError::Injected(step));
    }
    Ok(())
}

async fn run(
    fleet: &Fleet,
    plan: &Plan,
    options: &MoveOptions,
    started: Instant,
) -> Result<Moved, MoveError> {
    let mut clock = Clock::new();
    advance(fleet, plan, options, Step::Started).await?;
    prepare(fleet, plan).await?;
    clock.mark(Step::Prepared);
    advance(fleet, plan, options, Step::Prepared).await?;
    subscribe(fleet, plan).await?;
    clock.mark(Step::Subscribed);
    advance(fleet, plan, options, Step::Subscribed).await?;
    wait_synced(fleet, plan, options.sync_timeout).await?;
    catch_up(fleet, plan, options.sync_timeout).await?;
    clock.mark(Step::Synced);
    advance(fleet, plan, options, Step::Synced).await?;
    let frozen_at = Instant::now();
    freeze(fleet, plan).await?;
    clock.mark(Step::Frozen);
    advance(fleet, plan, options, Step::Frozen).await?;
    catch_up(fleet, plan, CATCH_UP).await?;
    copy_sequences(fleet, plan).await?;
    let (rows, audit_head) = compare(fleet, plan).await?;
    sqlx::query("UPDATE clinic_moves SET details = $2 WHERE id = $1")
        .bind(plan.move_id)
        .bind(json!({ "rows": rows, "auditHead": audit_head }))
        .execute(&fleet.databases.central)
        .await?;
    clock.mark(Step::Verified);
    advance(fleet, plan, options, Step::Verified).await?;
    switch(fleet, plan).await?;
    clock.mark(Step::Switched);
    let freeze_ms = frozen_at.elapsed().as_millis() as u64;
    checkpoint(options, Step::Switched)?;
    let kept = finish(fleet, plan).await?;
    clock.mark(Step::Done);
    checkpoint(options, Step::Done)?;
    let mut moved = report(fleet, plan, started, kept, rows, audit_head).await?;
    moved.freeze_ms = freeze_ms;
    moved.steps_ms = clock.steps;
    Ok(moved)
}

/// How long each step took.
struct Clock {
    last: Instant,
    steps: Vec<(Step, u64)>,
}

impl Clock {
    fn new() -> Self {
        Self {
            last: Instant::now(),
            steps: Vec::new(),
        }
    }

    fn mark(&mut self, step: Step) {
        let now = Instant::now();
        self.steps
            .push((step, now.duration_since(self.last).as_millis() as u64));
        self.last = now;
    }
}

async fn report(
    fleet: &Fleet,
    plan: &Plan,
    started: Instant,
    kept: Option<String>,
    rows: BTreeMap<String, i64>,
    audit_head: Option<i64>,
) -> Result<Moved, MoveError> {
    let from_server: Option<String> = match plan.source_server_id {
        Some(id) => {
            sqlx::query_scalar("SELECT name FROM db_servers WHERE id = $1")
                .bind(id)
                .fetch_optional(&fleet.databases.central)
                .await?
        }
        None => None,
    };
    Ok(Moved {
        clinic_id: plan.clinic.0,
        move_id: plan.move_id,
        from_server,
        to_server: plan.target.name.clone(),
        rows,
        audit_head,
        freeze_ms: 0,
        steps_ms: Vec::new(),
        seconds: started.elapsed().as_secs_f64(),
        source_kept_as: kept,
        rolled_back_earlier: false,
        finished_earlier: false,
    })
}

async fn mark_rolled_back(fleet: &Fleet, plan: &Plan, why: &str) -> Result<(), MoveError> {
    sqlx::query(
        "UPDATE clinic_moves
            SET step = 'rolled_back', details = details || jsonb_build_object('error', $2::text),
                updated_at = now(), finished_at = now()
          WHERE id = $1",
    )
    .bind(plan.move_id)
    .bind(why)
    .execute(&fleet.databases.central)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::replication::moved_tables;
    use super::*;

    #[test]
    fn steps_read_back_in_order() {
        for pair in Step::ALL.windows(2) {
            assert!(pair[0] < pair[1]);
            assert_eq!(Step::parse(pair[1].as_str()), Some(pair[1]));
        }
        assert_eq!(Step::parse("rolled_back"), None);
    }

    #[test]
    fn the_migration_ledger_does_not_move() {
        assert!(!moved_tables().any(|t| t == "_sqlx_migrations"));
        assert!(moved_tables().any(|t| t == "audit_events"));
    }
}
