//! The shared tier's pods: databases each holding the schemas of many
//! clinics, reached through one login role per pod whose connections all
//! of its clinics share (see `tenancy::ddl` for who owns and may do what,
//! `tenancy::pools` for how a transaction takes on one clinic's role).
//!
//! A pod is `<prefix>_pod_<uuid>`, both the database and its login role;
//! its password is sealed in central with the pod's id as associated data.
//! A clinic's schema and serving role are named like a dedicated clinic's
//! database and login role (`<prefix>_clinic_<uuid>`), so a clinic keeps
//! its names when it moves between tiers.
//!
//! Laying a schema out runs every migration (about a tenth of a second of
//! the server's time), so each pod keeps `POD_SPARE_SCHEMAS` schemas laid
//! out ahead with their roles, each named after a fresh id: the clinic that
//! takes one takes its id too, and only its settings are written then.

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};

use crate::tenancy::naming::{quote_ident, ClinicId};
use uuid::Uuid;

use crate::central::pods::{self, Pod};
use crate::config::DbPrefix;
use crate::crypto::random_token;
use crate::master_keys::MasterKeys;
use crate::migrations;
use crate::tenancy::ddl::{self, TenantRoles};

/// `<prefix>_pod_<uuid without ->`: a pod's database and login role.
pub fn pod_name(prefix: &DbPrefix, id: Uuid) -> String {
    format!("{}_pod_{}", prefix.as_str(), id.simple())
}

/// Makes a pod on the server `on_server` reaches (as the admin): its
/// login role and database, the extensions, then records it ready. On
/// failure, whatever was made is dropped.
pub async fn create(
    central: &PgPool,
    on_server: &PgConnectOptions,
    server: Uuid,
    prefix: &DbPrefix,
    keys: &MasterKeys,
    max_clinics: u32,
) -> Result<Pod, sqlx::Error> {
    let id = Uuid::new_v4();
    let name = pod_name(prefix, id);
    let password = random_token(32);
    let pod = Pod {
        id,
        db_name: name.clone(),
        db_user: name.clone(),
        db_password_sealed: keys.seal(password.as_bytes(), id.as_bytes()),
    };
    pods::insert(central, &pod, server, max_clinics).await?;
    let mut admin = on_server.connect().await?;
    let built = async {
        ddl::create_pod(&mut admin, &name, &password).await?;
        let mut in_pod = ddl::admin_session(on_server.clone().database(&name))
            .connect()
            .await?;
        let prepared = ddl::prepare_pod(&mut in_pod).await;
        let _ = in_pod.close().await;
        prepared?;
        pods::mark_ready(central, id).await
    }
    .await;
    if let Err(error) = built {
        tracing::error!(pod = %name, %error, "making a pod failed; dropping it");
        let _ = ddl::drop_database(&mut admin, &name).await;
        let _ = ddl::run(
            &mut admin,
            &format!(
                "DROP ROLE IF EXISTS {}",
                crate::tenancy::naming::quote_ident(&name)
            ),
        )
        .await;
        let _ = admin.close().await;
        let _ = pods::delete(central, id).await;
        return Err(error);
    }
    let _ = admin.close().await;
    tracing::info!(pod = %name, "pod made");
    Ok(pod)
}

/// Lays a new clinic schema out in the pod `in_pod` is connected to (as the
/// admin), inside `tx`: the schema, every migration, the audit trail and
/// the serving role's grants. `tx` is left acting as the clinic's owner
/// with the schema on its search path, for the initial rows.
pub async fn lay_out_clinic(
    tx: &mut PgConnection,
    roles: &TenantRoles,
    schema: &str,
) -> Result<(), sqlx::Error> {
    let script = ddl::shared_layout_script(schema, roles, &migrations::clinic_script(schema));
    ddl::run(tx, &script).await
}

/// In a laid-out clinic schema, inside `tx` (the admin's, in the pod):
/// acts as the clinic's owner with the schema on the search path, as
/// [`lay_out_clinic`] leaves it.
pub async fn enter_as_owner(
    tx: &mut PgConnection,
    roles: &TenantRoles,
    schema: &str,
) -> Result<(), sqlx::Error> {
    ddl::run(
        tx,
        &format!(
            "SET LOCAL ROLE {}; SET LOCAL search_path TO {}, extensions",
            quote_ident(&roles.owner),
            quote_ident(schema)
        ),
    )
    .await
}

/// Lays out one spare schema in `pod`, with its roles, named after a fresh
/// id, and records it. On failure, what was made is dropped.
pub async fn make_spare(
    central: &PgPool,
    on_server: &PgConnectOptions,
    in_pod: &PgPool,
    pod: &Pod,
    prefix: &DbPrefix,
) -> Result<(), sqlx::Error> {
    let id = ClinicId::generate();
    let roles = TenantRoles::of(id, prefix);
    let schema = id.database_name(prefix);
    let mut admin = on_server.connect().await?;
    let made = async {
        ddl::create_shared_roles(&mut admin, &roles, &pod.db_user).await?;
        let mut tx = in_pod.begin().await?;
        lay_out_clinic(&mut tx, &roles, &schema).await?;
        tx.commit().await?;
        pods::add_spare(central, id.0, pod.id).await
    }
    .await;
    if made.is_err() {
        if let Ok(mut conn) = in_pod.acquire().await {
            let _ = ddl::drop_schema(&mut conn, &schema).await;
        }
        let _ = ddl::drop_roles(&mut admin, &roles).await;
    }
    let _ = admin.close().await;
    made
}
