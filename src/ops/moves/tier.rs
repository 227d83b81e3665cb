//! `medicalpro clinic move ID --tier dedicated|shared`: a clinic moved
//! between a database of its own and a schema in a pod of the same server,
//! with all its data and its audit chain, its names kept (the schema and
//! serving role are named as the database and login role).
//!
//! The steps:
//! 1. the target laid out by the product's DDL: a schema in the pod with
//!    the most room (its roles made ready: the login role becomes the
//!    pod's serving role too), or a database with the clinic's login role
//!    given a new password again; nothing of the source's definitions is
//!    used;
//! 2. writes frozen on the source (`INSERT`, `UPDATE`, `DELETE` revoked
//!    from its role: writes answer 503 `clinic_unavailable`, reads go on);
//! 3. every table's rows copied (`COPY`, in foreign-key order, into the
//!    target's tables with their triggers off: the rows and the chain are
//!    the source's);
//! 4. the trail closed on the source (its append functions revoked: reads
//!    answer 503 from here to the switch), the events appended meanwhile
//!    copied, every sequence set;
//! 5. row counts and the audit chain's head compared;
//! 6. the placement switched in central and every instance told at once;
//! 7. the source dropped (its data is on the target, compared), the
//!    roles' old tier undone (the login role `NOLOGIN`, or no longer a
//!    member of the pod's role).
//!
//! A move that fails before the switch drops the target and gives the
//! source its grants back; run again after an interruption (a killed
//! process), it finds the clinic on its old tier, drops the target left
//! behind and starts over; after the switch it only finishes step 7. The
//! source stays whole until the switch.

use std::collections::BTreeMap;

use serde::Serialize;
use sqlx::Connection;
use uuid::Uuid;

use crate::central::companies::{self, Placement};
use crate::central::notify::{self, Change};
use crate::central::pods;
use crate::config::Tier;
use crate::crypto::random_token;
use crate::migrations;
use crate::ops::copy::{audit_head, census, copy_sequences, copy_tables, Side};
use crate::ops::restore::tables_in_load_order_in;
use crate::ops::{connect, ClinicRecord, Fleet};
use crate::tenancy::ddl::{self, TenantRoles};
use crate::tenancy::naming::{quote_ident, ClinicId};

/// What a tier move did.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TierMoved {
    pub clinic_id: Uuid,
    pub from: Tier,
    pub to: Tier,
    /// Rows of each table, equal on both sides.
    pub rows: BTreeMap<String, i64>,
    /// The audit chain's last id and hash, equal on both sides.
    pub audit_head: Option<(i64, String)>,
    /// How long writes were refused, in milliseconds.
    pub freeze_ms: u128,
    /// The clinic was already on that tier: what an interrupted move left
    /// was cleaned up.
    pub already: bool,
}

/// The target being made, and what switching to it records.
struct Target {
    side: Side,
    placement: Placement,
    server_id: Uuid,
}

pub async fn move_to_tier(fleet: &Fleet, id: ClinicId, tier: Tier) -> anyhow::Result<TierMoved> {
    let clinic = fleet.clinic(id).await?;
    let from = if clinic.is_shared() {
        Tier::Shared
    } else {
        Tier::Dedicated
    };
    let roles = TenantRoles::of(id, &fleet.settings.prefix);
    let latest = migrations::latest_version(&migrations::CLINIC);
    anyhow::ensure!(
        from == tier || clinic.schema_version == latest,
        "clinic {id} is at schema version {}, not {latest}: `medicalpro migrate --clinic {id}` first",
        clinic.schema_version
    );
    if from == tier {
        drop_target(fleet, &clinic, other(tier)).await?;
        undo_old_tier(fleet, &clinic, &roles, other(tier)).await?;
        return Ok(TierMoved {
            clinic_id: id.0,
            from,
            to: tier,
            rows: BTreeMap::new(),
            audit_head: None,
            freeze_ms: 0,
            already: true,
        });
    }
    let source = Side {
        options: fleet.admin_options_on(&clinic, &clinic.db_name),
        schema: clinic.schema().to_owned(),
    };
    drop_target(fleet, &clinic, tier).await?;
    let target = make_target(fleet, &clinic, &roles, tier).await?;
    let moved = copy_and_switch(fleet, &clinic, &roles, &source, &target).await;
    match moved {
        Ok((rows, audit_head, freeze_ms)) => {
            notify::send(&fleet.databases.central, Change::Placement(id)).await?;
            drop_source(fleet, &clinic).await?;
            undo_old_tier(fleet, &clinic, &roles, from).await?;
            Ok(TierMoved {
                clinic_id: id.0,
                from,
                to: tier,
                rows,
                audit_head,
                freeze_ms,
                already: false,
            })
        }
        Err(error) => {
            let unfrozen = unfreeze(&source, &roles).await;
            let dropped = drop_target(fleet, &clinic, tier).await;
            if let Err(more) = unfrozen.and(dropped) {
                tracing::error!(clinic.id = %id, error = %format!("{more:#}"), "rolling a tier move back");
            }
            Err(error)
        }
    }
}

fn other(tier: Tier) -> Tier {
    match tier {
        Tier::Dedicated => Tier::Shared,
        Tier::Shared => Tier::Dedicated,
    }
}

/// Step 1: the target, laid out and locked down, empty.
async fn make_target(
    fleet: &Fleet,
    clinic: &ClinicRecord,
    roles: &TenantRoles,
    tier: Tier,
) -> anyhow::Result<Target> {
    let id = ClinicId(clinic.id);
    let server_id: Uuid = sqlx::query_scalar("SELECT db_server_id FROM companies WHERE id = $1")
        .bind(clinic.id)
        .fetch_one(&fleet.databases.central)
        .await?;
    let mut admin = fleet
        .admin_on_server(&clinic.db_host, clinic.db_port)
        .await?;
    let made = async {
        match tier {
            Tier::Shared => {
                let mut central = fleet.databases.central.acquire().await?;
                let room = pods::with_room(&mut central, server_id).await?;
                drop(central);
                let pod = match room {
                    Some(pod) => pod,
                    None => {
                        crate::tenancy::pods::create(
                            &fleet.databases.central,
                            &fleet
                                .databases
                                .admin_on_server(&clinic.db_host, clinic.db_port),
                            server_id,
                            &fleet.settings.prefix,
                            &fleet.settings.keys,
                            fleet.settings.provisioning.pod_max_clinics,
                        )
                        .await?
                    }
                };
                ddl::run(
                    &mut admin,
                    &format!(
                        "GRANT {} TO {}",
                        quote_ident(&roles.login),
                        quote_ident(&pod.db_user)
                    ),
                )
                .await?;
                let schema = id.database_name(&fleet.settings.prefix);
                let in_pod = fleet.admin_options_on(clinic, &pod.db_name);
                let mut conn = connect(&ddl::admin_session(in_pod.clone())).await?;
                let mut tx = conn.begin().await?;
                crate::tenancy::pods::lay_out_clinic(&mut tx, roles, &schema).await?;
                tx.commit().await?;
                let _ = conn.close().await;
                Ok::<_, anyhow::Error>(Target {
                    side: Side {
                        options: in_pod,
                        schema: schema.clone(),
                    },
                    placement: Placement::shared(
                        &clinic.db_host,
                        clinic.db_port,
                        &pod,
                        &schema,
                        &roles.login,
                    ),
                    server_id,
                })
            }
            Tier::Dedicated => {
                let database = id.database_name(&fleet.settings.prefix);
                let password = random_token(32);
                ddl::run(
                    &mut admin,
                    &format!(
                        "ALTER ROLE {} LOGIN CONNECTION LIMIT {}",
                        quote_ident(&roles.login),
                        ddl::ROLE_CONNECTION_LIMIT
                    ),
                )
                .await?;
                ddl::set_password(&mut admin, &roles.login, &password).await?;
                ddl::create_database(&mut admin, &database, roles, "template0").await?;
                let in_database = fleet.admin_options_on(clinic, &database);
                let mut as_owner =
                    connect(&ddl::owner_session(in_database.clone(), &roles.owner)).await?;
                let laid_out = async {
                    migrations::run_on(&migrations::CLINIC, &mut as_owner).await?;
                    ddl::install_audit_trail(&mut as_owner, "public").await?;
                    ddl::lock_down(&mut as_owner, &roles.login, "public").await?;
                    Ok::<_, anyhow::Error>(())
                }
                .await;
                let _ = as_owner.close().await;
                laid_out?;
                Ok(Target {
                    side: Side {
                        options: in_database,
                        schema: "public".into(),
                    },
                    placement: Placement::dedicated(
                        &clinic.db_host,
                        clinic.db_port,
                        &database,
                        &roles.login,
                        fleet
                            .settings
                            .keys
                            .seal(password.as_bytes(), id.0.as_bytes()),
                    ),
                    server_id,
                })
            }
        }
    }
    .await;
    let _ = admin.close().await;
    made
}

/// Steps 2 to 6; returns the rows compared, the chain's head and how long
/// writes were frozen.
async fn copy_and_switch(
    fleet: &Fleet,
    clinic: &ClinicRecord,
    roles: &TenantRoles,
    source: &Side,
    target: &Target,
) -> anyhow::Result<(BTreeMap<String, i64>, Option<(i64, String)>, u128)> {
    let frozen_at = std::time::Instant::now();
    freeze(source, roles, false).await?;
    let mut from = connect(&ddl::admin_session(source.options.clone())).await?;
    let mut into = connect(&ddl::admin_session(target.side.options.clone())).await?;
    let tables = tables_in_load_order_in(&mut from, &source.schema).await?;
    let trail = ["audit_events", "audit_events_pending"];
    copy_tables(
        &mut from,
        &mut into,
        source,
        &target.side,
        roles,
        &tables,
        &trail,
    )
    .await?;
    freeze(source, roles, true).await?;
    let trail: Vec<String> = trail.iter().map(|t| (*t).to_owned()).collect();
    copy_tables(
        &mut from,
        &mut into,
        source,
        &target.side,
        roles,
        &trail,
        &[],
    )
    .await?;
    copy_sequences(&mut from, &mut into, source, &target.side).await?;
    let rows = census(&mut from, source, &tables).await?;
    let after = census(&mut into, &target.side, &tables).await?;
    let head = audit_head(&mut from, source).await?;
    if rows != after || head != audit_head(&mut into, &target.side).await? {
        anyhow::bail!("the copy differs from the source: {rows:?} against {after:?}");
    }
    let _ = from.close().await;
    let _ = into.close().await;
    let version = migrations::latest_version(&migrations::CLINIC);
    companies::mark_ready(
        &fleet.databases.central,
        ClinicId(clinic.id),
        target.server_id,
        &target.placement,
        version,
    )
    .await?;
    let head = head.map(|(id, hash)| (id, crate::crypto::hex(&hash)));
    Ok((rows, head, frozen_at.elapsed().as_millis()))
}

/// Revokes the source role's writes (`INSERT`, `UPDATE`, `DELETE`) and,
/// with `trail`, its use of the trail's functions (no more events).
async fn freeze(source: &Side, roles: &TenantRoles, trail: bool) -> anyhow::Result<()> {
    let mut as_owner = connect(&ddl::owner_session(source.options.clone(), &roles.owner)).await?;
    let schema = quote_ident(&source.schema);
    let login = quote_ident(&roles.login);
    let mut script = format!(
        "REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA {schema} FROM {login};"
    );
    if trail {
        script.push_str(&format!(
            "REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA {schema} FROM {login};"
        ));
    }
    let done = ddl::run(&mut as_owner, &script).await;
    let _ = as_owner.close().await;
    Ok(done?)
}

/// The source role's grants back (a failed move).
async fn unfreeze(source: &Side, roles: &TenantRoles) -> anyhow::Result<()> {
    let mut as_owner = connect(&ddl::owner_session(source.options.clone(), &roles.owner)).await?;
    let done = ddl::lock_down(&mut as_owner, &roles.login, &source.schema).await;
    let _ = as_owner.close().await;
    Ok(done?)
}

/// Drops the clinic's schema in every pod of its server (`Shared`) or its
/// database (`Dedicated`): only ever called for the tier the clinic is not on, for
/// what a failed or interrupted move left there.
async fn drop_target(fleet: &Fleet, clinic: &ClinicRecord, tier: Tier) -> anyhow::Result<()> {
    let on_it = clinic.is_shared() == (tier == Tier::Shared);
    anyhow::ensure!(
        !on_it,
        "refusing to drop the tier clinic {} is on",
        clinic.id
    );
    let name = ClinicId(clinic.id).database_name(&fleet.settings.prefix);
    match tier {
        Tier::Dedicated => {
            let mut admin = fleet
                .admin_on_server(&clinic.db_host, clinic.db_port)
                .await?;
            let dropped = ddl::drop_database(&mut admin, &name).await;
            let _ = admin.close().await;
            dropped?;
        }
        Tier::Shared => {
            // The pods of the clinic's server.
            let pods: Vec<String> = sqlx::query_scalar(
                "SELECT p.db_name FROM pods p JOIN db_servers s ON s.id = p.db_server_id
                  WHERE s.host = $1 AND s.port = $2",
            )
            .bind(&clinic.db_host)
            .bind(clinic.db_port)
            .fetch_all(&fleet.databases.central)
            .await?;
            for pod in pods {
                let in_pod = fleet.admin_options_on(clinic, &pod);
                let mut conn = connect(&ddl::admin_session(in_pod)).await?;
                let dropped = ddl::drop_schema(&mut conn, &name).await;
                let _ = conn.close().await;
                dropped?;
            }
        }
    }
    Ok(())
}

/// Step 7's first half: the source's data dropped.
async fn drop_source(fleet: &Fleet, clinic: &ClinicRecord) -> anyhow::Result<()> {
    if clinic.is_shared() {
        let mut conn = connect(&ddl::admin_session(
            fleet.admin_options_on(clinic, &clinic.db_name),
        ))
        .await?;
        let dropped = ddl::drop_schema(&mut conn, clinic.schema()).await;
        let _ = conn.close().await;
        dropped?;
    } else {
        let mut admin = fleet
            .admin_on_server(&clinic.db_host, clinic.db_port)
            .await?;
        let dropped = ddl::drop_database(&mut admin, &clinic.db_name).await;
        let _ = admin.close().await;
        dropped?;
    }
    Ok(())
}

/// Step 7's second half: the login role of a clinic no longer dedicated
/// cannot log in; a clinic no longer shared leaves every pod's role.
async fn undo_old_tier(
    fleet: &Fleet,
    clinic: &ClinicRecord,
    roles: &TenantRoles,
    old: Tier,
) -> anyhow::Result<()> {
    let mut admin = fleet
        .admin_on_server(&clinic.db_host, clinic.db_port)
        .await?;
    let login = quote_ident(&roles.login);
    let done = async {
        match old {
            Tier::Dedicated => {
                ddl::run(
                    &mut admin,
                    &format!("ALTER ROLE {login} NOLOGIN PASSWORD NULL"),
                )
                .await?;
            }
            Tier::Shared => {
                let pod_roles: Vec<String> = sqlx::query_scalar(
                    "SELECT r.rolname::text FROM pg_catalog.pg_auth_members m
                       JOIN pg_catalog.pg_roles r ON r.oid = m.member
                      WHERE m.roleid = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = $1)
                        AND r.rolname LIKE $2",
                )
                .bind(&roles.login)
                .bind(format!("{}\\_pod\\_%", fleet.settings.prefix.as_str()))
                .fetch_all(&mut admin)
                .await?;
                for pod_role in pod_roles {
                    ddl::run(
                        &mut admin,
                        &format!("REVOKE {login} FROM {}", quote_ident(&pod_role)),
                    )
                    .await?;
                }
            }
        }
        Ok::<_, anyhow::Error>(())
    }
    .await;
    let _ = admin.close().await;
    done
}

/// What `clinic move ID --server S [--tier T]` did: a shared clinic becomes
/// dedicated on its server, moves as a database, and becomes shared again
/// in a pod of the new server (or stays dedicated with `--tier
/// dedicated`).
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Relocation {
    /// To a database of its own, before the server move.
    pub to_dedicated: Option<TierMoved>,
    pub moved: Option<super::Moved>,
    /// To the tier asked for, after it.
    pub to_tier: Option<TierMoved>,
}

/// Moves a clinic to `options.server` by logical replication (a shared
/// clinic by way of the dedicated tier), ending on `tier` (by default the
/// tier it is on). Each part resumes when run again; a shared clinic
/// interrupted between the parts is dedicated until the command is run
/// again with `--tier shared`.
pub async fn move_across_servers(
    fleet: &Fleet,
    options: &super::MoveOptions,
    tier: Option<Tier>,
) -> anyhow::Result<Relocation> {
    let id = options.clinic;
    let clinic = fleet.clinic(id).await?;
    let last = tier.unwrap_or(if clinic.is_shared() {
        Tier::Shared
    } else {
        Tier::Dedicated
    });
    let target = crate::ops::servers::find(fleet, &options.server).await?;
    let there = target.host == clinic.db_host && target.port == clinic.db_port;
    let unfinished = super::open_move(fleet, id).await?.is_some();
    let mut relocation = Relocation::default();
    if !there || unfinished {
        if clinic.is_shared() {
            relocation.to_dedicated = Some(move_to_tier(fleet, id, Tier::Dedicated).await?);
        }
        relocation.moved = Some(super::move_clinic(fleet, options).await?);
    }
    let now = fleet.clinic(id).await?;
    if now.is_shared() != (last == Tier::Shared) {
        relocation.to_tier = Some(move_to_tier(fleet, id, last).await?);
    }
    Ok(relocation)
}
