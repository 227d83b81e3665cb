//! Copying a clinic's rows from one place to another (a database's
//! `public`, or a schema in a pod) with `COPY`: moves between tiers,
//! backups of a shared clinic (through a database laid out for the
//! moment), restores into one.

use std::collections::BTreeMap;

use futures_util::TryStreamExt;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};

use crate::migrations;
use crate::ops::restore::tables_in_load_order_in;
use crate::ops::{connect, ClinicRecord, Fleet};
use crate::tenancy::ddl::{self, TenantRoles};
use crate::tenancy::naming::{quote_ident, ClinicId};

/// One side of a copy: a database (the admin's options) and the schema
/// holding the clinic's tables.
pub struct Side {
    pub options: PgConnectOptions,
    pub schema: String,
}

impl Side {
    pub fn table(&self, table: &str) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(table))
    }
}

/// Copies `tables` (all but `skip`, in foreign-key load order) from
/// `source` into `target`: read in one snapshot of the source, written in
/// one transaction on the target as its owner, the target's triggers off
/// (the rows and the chain are the source's). What the target's tables
/// held is deleted first (children first), so a restore replaces a live
/// clinic's rows at once.
pub async fn copy_tables(
    from: &mut PgConnection,
    into: &mut PgConnection,
    source: &Side,
    target: &Side,
    roles: &TenantRoles,
    tables: &[String],
    skip: &[&str],
) -> anyhow::Result<()> {
    let tables: Vec<&String> = tables
        .iter()
        .filter(|t| !skip.contains(&t.as_str()))
        .collect();
    let mut snapshot = from.begin().await?;
    ddl::run(
        &mut snapshot,
        "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY",
    )
    .await?;
    let mut tx = into.begin().await?;
    ddl::run(
        &mut tx,
        &format!("SET LOCAL ROLE {}", quote_ident(&roles.owner)),
    )
    .await?;
    for table in tables.iter().rev() {
        let table = target.table(table);
        ddl::run(
            &mut tx,
            &format!("ALTER TABLE {table} DISABLE TRIGGER USER; DELETE FROM {table};"),
        )
        .await?;
    }
    for table in &tables {
        copy_rows(&mut snapshot, &mut tx, source, target, table).await?;
    }
    for table in &tables {
        ddl::run(
            &mut tx,
            &format!("ALTER TABLE {} ENABLE TRIGGER USER", target.table(table)),
        )
        .await?;
    }
    tx.commit().await?;
    snapshot.commit().await?;
    Ok(())
}

/// One table's rows, the target's columns (generated ones aside) named.
async fn copy_rows(
    from: &mut PgConnection,
    into: &mut PgConnection,
    source: &Side,
    target: &Side,
    table: &str,
) -> anyhow::Result<()> {
    let columns: Vec<String> = sqlx::query_scalar(
        "SELECT pg_catalog.quote_ident(column_name::text) FROM information_schema.columns
          WHERE table_schema = $1 AND table_name = $2 AND is_generated = 'NEVER'
          ORDER BY ordinal_position",
    )
    .bind(&target.schema)
    .bind(table)
    .fetch_all(&mut *into)
    .await?;
    let columns = columns.join(", ");
    let mut out = from
        .copy_out_raw(&format!(
            "COPY {} ({columns}) TO STDOUT (FORMAT binary)",
            source.table(table)
        ))
        .await?;
    let mut copy_in = into
        .copy_in_raw(&format!(
            "COPY {} ({columns}) FROM STDIN (FORMAT binary)",
            target.table(table)
        ))
        .await?;
    while let Some(chunk) = out.try_next().await? {
        copy_in.send(chunk).await?;
    }
    copy_in.finish().await?;
    Ok(())
}

/// Every sequence of the source's schema at its position on the target.
pub async fn copy_sequences(
    from: &mut PgConnection,
    into: &mut PgConnection,
    source: &Side,
    target: &Side,
) -> anyhow::Result<()> {
    let sequences: Vec<(String, i64, bool)> = sqlx::query_as(
        "SELECT sequencename::text, COALESCE(last_value, 1), last_value IS NOT NULL
           FROM pg_catalog.pg_sequences WHERE schemaname = $1",
    )
    .bind(&source.schema)
    .fetch_all(&mut *from)
    .await?;
    for (sequence, value, called) in sequences {
        sqlx::query("SELECT pg_catalog.setval($1::regclass, $2, $3)")
            .bind(target.table(&sequence))
            .bind(value)
            .bind(called)
            .execute(&mut *into)
            .await?;
    }
    Ok(())
}

pub async fn census(
    conn: &mut PgConnection,
    side: &Side,
    tables: &[String],
) -> anyhow::Result<BTreeMap<String, i64>> {
    let mut rows = BTreeMap::new();
    for table in tables {
        let count: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {}", side.table(table)))
            .fetch_one(&mut *conn)
            .await?;
        rows.insert(table.clone(), count);
    }
    Ok(rows)
}

pub async fn audit_head(
    conn: &mut PgConnection,
    side: &Side,
) -> anyhow::Result<Option<(i64, Vec<u8>)>> {
    Ok(sqlx::query_as(&format!(
        "SELECT id, hash FROM {} ORDER BY id DESC LIMIT 1",
        side.table("audit_events")
    ))
    .fetch_optional(conn)
    .await?)
}

/// A database laid out for the moment (`<prefix>_copy_<uuid>`, the
/// clinic's owner its owner) holding a shared clinic's rows, copied in one
/// snapshot of its schema: what `backup` dumps for a shared clinic, so that
/// every backup file has the same layout (a restore takes it on either
/// tier). The caller drops it ([`drop_database`]).
pub async fn into_database(fleet: &Fleet, clinic: &ClinicRecord) -> anyhow::Result<String> {
    let roles = TenantRoles::of(ClinicId(clinic.id), &fleet.settings.prefix);
    let database = format!(
        "{}_copy_{}",
        fleet.settings.prefix.as_str(),
        uuid::Uuid::new_v4().simple()
    );
    let mut admin = fleet
        .admin_on_server(&clinic.db_host, clinic.db_port)
        .await?;
    ddl::create_database(&mut admin, &database, &roles, "template0").await?;
    let _ = admin.close().await;
    let copied = async {
        let target = Side {
            options: fleet.admin_options_on(clinic, &database),
            schema: "public".into(),
        };
        let source = Side {
            options: fleet.admin_options_on(clinic, &clinic.db_name),
            schema: clinic.schema().to_owned(),
        };
        let mut as_owner =
            connect(&ddl::owner_session(target.options.clone(), &roles.owner)).await?;
        let laid_out = async {
            migrations::run_on(&migrations::CLINIC, &mut as_owner).await?;
            ddl::install_audit_trail(&mut as_owner, "public").await?;
            Ok::<_, anyhow::Error>(())
        }
        .await;
        let _ = as_owner.close().await;
        laid_out?;
        let mut from = connect(&ddl::admin_session(source.options.clone())).await?;
        let mut into = connect(&ddl::admin_session(target.options.clone())).await?;
        let tables = tables_in_load_order_in(&mut from, &source.schema).await?;
        copy_tables(&mut from, &mut into, &source, &target, &roles, &tables, &[]).await?;
        copy_sequences(&mut from, &mut into, &source, &target).await?;
        let _ = from.close().await;
        let _ = into.close().await;
        Ok::<_, anyhow::Error>(())
    }
    .await;
    if let Err(error) = copied {
        drop_database(fleet, clinic, &database).await;
        return Err(error);
    }
    Ok(database)
}

/// Replaces a shared clinic's rows with those of `staged` (a database of
/// the clinic's layout on its server, as `restore` stages a backup), in one
/// transaction in its schema.
pub async fn into_schema(fleet: &Fleet, clinic: &ClinicRecord, staged: &str) -> anyhow::Result<()> {
    let roles = TenantRoles::of(ClinicId(clinic.id), &fleet.settings.prefix);
    let source = Side {
        options: fleet.admin_options_on(clinic, staged),
        schema: "public".into(),
    };
    let target = Side {
        options: fleet.admin_options_on(clinic, &clinic.db_name),
        schema: clinic.schema().to_owned(),
    };
    let mut from = connect(&ddl::admin_session(source.options.clone())).await?;
    let mut into = connect(&ddl::admin_session(target.options.clone())).await?;
    let copied = async {
        let tables = tables_in_load_order_in(&mut from, "public").await?;
        copy_tables(&mut from, &mut into, &source, &target, &roles, &tables, &[]).await?;
        copy_sequences(&mut from, &mut into, &source, &target).await
    }
    .await;
    let _ = from.close().await;
    let _ = into.close().await;
    copied
}

/// Drops a database made by [`into_database`] (errors logged).
pub async fn drop_database(fleet: &Fleet, clinic: &ClinicRecord, database: &str) {
    let dropped = async {
        let mut admin = fleet
            .admin_on_server(&clinic.db_host, clinic.db_port)
            .await?;
        ddl::drop_database(&mut admin, database).await?;
        let _ = admin.close().await;
        Ok::<_, anyhow::Error>(())
    }
    .await;
    if let Err(error) = dropped {
        tracing::warn!(%database, error = %format!("{error:#}"), "dropping a copy's database failed");
    }
}
