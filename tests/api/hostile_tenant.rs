//! The hostile tenant: someone holding one clinic's database credentials
//! (its login role and password). Each test acts as that role over a real
//! connection and tries to reach beyond the clinic's own rows: grow its
//! powers, run code as another role, rewrite what law and money depend on,
//! survive an upgrade or a restore with planted code.

use axum::http::StatusCode;
use medicalpro::ops::backup::{backup_clinic, WhenExists};
use medicalpro::ops::migrate::{self, MigrateOptions};
use medicalpro::ops::restore::{restore, NewIdentity, RestoreOptions};
use medicalpro::ops::Fleet;
use medicalpro::tenancy::ddl::TABLE_GRANTS;
use medicalpro::tenancy::naming::ClinicId;
use serde_json::json;
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use crate::helpers::{spawn_app, TestApp};

/// What the login role tries, each refused for lack of privilege (42501).
fn escalations(database: &str) -> Vec<String> {
    [
        "CREATE TABLE public.mine (x int)",
        "CREATE FUNCTION public.mine() RETURNS int LANGUAGE sql AS 'SELECT 1'",
        "CREATE SCHEMA mine",
        "CREATE TEMP TABLE mine (x int)",
        "CREATE EXTENSION IF NOT EXISTS pgcrypto",
        "ALTER TABLE public.appointments DROP CONSTRAINT appointments_no_overlap",
        "ALTER TABLE public.documents DISABLE TRIGGER documents_issued_frozen",
        "DROP TABLE public.patients",
        "DROP TABLE public._sqlx_migrations",
        "INSERT INTO public._sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (999, 'fake', true, '\\x00', 0)",
        "ALTER TABLE public.patients OWNER TO CURRENT_USER",
        "ALTER SCHEMA public OWNER TO CURRENT_USER",
        "TRUNCATE public.audit_events",
        "UPDATE public.audit_events SET action = 'forged'",
        "DELETE FROM public.audit_events",
        "SELECT * FROM public.audit_events_pending",
        "DELETE FROM public.document_counters",
        "SELECT public.audit_events_chain_pending(10)",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([format!("DROP DATABASE \"{database}\"")])
    .collect()
}

/// The clinic's owner role, as `tenancy::ddl` names it.
pub fn owner_role(app: &TestApp, clinic: Uuid) -> String {
    format!("{}_owner_{}", app.prefix, clinic.simple())
}

/// The login role of `clinic` and its password.
async fn login(app: &TestApp, clinic: Uuid) -> PgConnection {
    let database = app.clinic_database(clinic);
    let password = app.clinic_password(clinic).await;
    app.connect_as(&database, &password, &database)
        .await
        .expect("the login role connects to its database")
}

async fn sqlstate(conn: &mut PgConnection, sql: &str) -> Option<String> {
    match sqlx::raw_sql(sql).execute(&mut *conn).await {
        Ok(_) => None,
        Err(error) => Some(
            error
                .as_database_error()
                .and_then(|e| e.code().map(|c| c.into_owned()))
                .unwrap_or_else(|| error.to_string()),
        ),
    }
}

/// Runs each statement as the login role: every one refused for lack of
/// privilege (42501), whatever else might have refused it.
async fn assert_refused(conn: &mut PgConnection, statements: impl IntoIterator<Item = String>) {
    for statement in statements {
        assert_eq!(
            sqlstate(conn, &statement).await.as_deref(),
            Some("42501"),
            "{statement}"
        );
    }
}

/// Takes a clinic database (as the admin) back to the schema of the
/// previous release: without migration 8's search index (nor the extension
/// it brought), nor its ledger row.
pub async fn as_previous_release(admin_in_clinic: &mut PgConnection) {
    sqlx::raw_sql(UNDO_9)
        .execute(&mut *admin_in_clinic)
        .await
        .unwrap();
}

/// Undoes clinic migration 9 (the clinic's address, SIRET and VAT number).
pub const UNDO_9: &str = "ALTER TABLE clinic_settings DROP COLUMN address_line1,
         DROP COLUMN address_line2, DROP COLUMN address_city, DROP COLUMN address_postal_code,
         DROP COLUMN address_country, DROP COLUMN siret, DROP COLUMN vat_number;
     DELETE FROM _sqlx_migrations WHERE version = 9;";

/// Takes a clinic database (as the admin) back to the schema of the release
/// before the previous one: also without migration 7's invariants.
pub async fn as_release_before_invariants(admin_in_clinic: &mut PgConnection) {
    as_previous_release(admin_in_clinic).await;
    sqlx::raw_sql(
        "DROP INDEX patients_search_idx;
         DROP EXTENSION pg_trgm;
         DELETE FROM _sqlx_migrations WHERE version = 8;
         DROP TRIGGER documents_issued_frozen ON documents;
         DROP TRIGGER document_items_issued_frozen ON document_items;
         DROP TRIGGER document_counters_forward ON document_counters;
         DROP FUNCTION documents_issued_frozen(), document_items_issued_frozen(),
             document_counters_forward(), document_is_frozen(documents);
         DELETE FROM _sqlx_migrations WHERE version = 7;",
    )
    .execute(admin_in_clinic)
    .await
    .unwrap();
}

/// Every claim of the layout, for one clinic: the owner role owns the
/// database and everything in it, the login role owns nothing, holds
/// `CONNECT`, `USAGE` and exactly [`TABLE_GRANTS`], belongs to no role,
/// and each way to grow its power is refused.
pub async fn assert_locked_down(app: &TestApp, clinic: Uuid) {
    let database = app.clinic_database(clinic);
    let login_role = database.clone();
    let owner = owner_role(app, clinic);
    let mut server = app.admin_connection("postgres").await;
    let datowner: String = sqlx::query_scalar(
        "SELECT pg_get_userbyid(datdba)::text FROM pg_database WHERE datname = $1",
    )
    .bind(&database)
    .fetch_one(&mut server)
    .await
    .unwrap();
    assert_eq!(datowner, owner);
    let database_grants: Vec<(String, String)> = sqlx::query_as(
        "SELECT COALESCE(r.rolname::text, 'PUBLIC'), a.privilege_type
           FROM pg_database d CROSS JOIN LATERAL aclexplode(d.datacl) a
           LEFT JOIN pg_roles r ON r.oid = a.grantee
          WHERE d.datname = $1 AND a.grantee <> d.datdba ORDER BY 1, 2",
    )
    .bind(&database)
    .fetch_all(&mut server)
    .await
    .unwrap();
    assert_eq!(
        database_grants,
        [(login_role.clone(), "CONNECT".to_owned())]
    );
    let (memberships, owner_logs_in): (i64, bool) = sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member
                  WHERE r.rolname = $1),
                (SELECT rolcanlogin FROM pg_roles WHERE rolname = $2)",
    )
    .bind(&login_role)
    .bind(&owner)
    .fetch_one(&mut server)
    .await
    .unwrap();
    assert_eq!((memberships, owner_logs_in), (0, false));
    server.close().await.unwrap();

    let mut db = app.admin_connection(&database).await;
    let owned_by_login: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM pg_shdepend d JOIN pg_database db ON db.oid = d.dbid
          WHERE db.datname = current_database() AND d.deptype = 'o'
            AND d.refobjid = (SELECT oid FROM pg_roles WHERE rolname = $1)",
    )
    .bind(&login_role)
    .fetch_one(&mut db)
    .await
    .unwrap();
    assert_eq!(owned_by_login, 0, "objects owned by the login role");
    let foreign: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = 'public' AND pg_get_userbyid(c.relowner) <> $1
         UNION ALL
         SELECT p.proname::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
          WHERE n.nspname = 'public' AND pg_get_userbyid(p.proowner) <> $1
            -- (a trusted extension's C functions belong to the bootstrap superuser)
            AND p.oid NOT IN (SELECT objid FROM pg_depend WHERE deptype = 'e')
         UNION ALL
         SELECT nspname::text FROM pg_namespace WHERE nspname = 'public' AND pg_get_userbyid(nspowner) <> $1",
    )
    .bind(&owner)
    .fetch_all(&mut db)
    .await
    .unwrap();
    assert!(foreign.is_empty(), "not the owner's: {foreign:?}");
    let schema_grants: Vec<(String, String)> = sqlx::query_as(
        "SELECT COALESCE(r.rolname::text, 'PUBLIC'), a.privilege_type
           FROM pg_namespace n CROSS JOIN LATERAL aclexplode(n.nspacl) a
           LEFT JOIN pg_roles r ON r.oid = a.grantee
          WHERE n.nspname = 'public' AND a.grantee <> n.nspowner ORDER BY 1, 2",
    )
    .fetch_all(&mut db)
    .await
    .unwrap();
    assert_eq!(schema_grants, [(login_role.clone(), "USAGE".to_owned())]);
    let mut table_grants: Vec<(String, String)> = sqlx::query_as(
        "SELECT c.relname::text, string_agg(a.privilege_type, ', ' ORDER BY
                array_position(ARRAY['SELECT','INSERT','UPDATE','DELETE'], a.privilege_type::text))
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           CROSS JOIN LATERAL aclexplode(c.relacl) a
          WHERE n.nspname = 'public' AND a.grantee = (SELECT oid FROM pg_roles WHERE rolname = $1)
          GROUP BY c.relname ORDER BY 1",
    )
    .bind(&login_role)
    .fetch_all(&mut db)
    .await
    .unwrap();
    let mut expected: Vec<(String, String)> = TABLE_GRANTS
        .iter()
        .filter(|(_, privileges)| !privileges.is_empty())
        .map(|(t, p)| (t.to_string(), p.to_string()))
        .collect();
    expected.sort();
    table_grants.sort();
    assert_eq!(table_grants, expected);
    let public_grants: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          CROSS JOIN LATERAL aclexplode(c.relacl) a WHERE n.nspname = 'public' AND a.grantee = 0",
    )
    .fetch_one(&mut db)
    .await
    .unwrap();
    assert_eq!(public_grants, 0);
    // Every table of the schema has its entry (a new table is not forgotten).
    let unlisted: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relname = ANY($1)",
    )
    .bind(TABLE_GRANTS.iter().map(|(t, _)| *t).collect::<Vec<_>>())
    .fetch_all(&mut db)
    .await
    .unwrap();
    assert!(unlisted.is_empty(), "tables without grants: {unlisted:?}");
    db.close().await.unwrap();

    let mut as_login = login(app, clinic).await;
    assert_refused(&mut as_login, escalations(&database)).await;
    // The attack of the report: planting code for the trail's functions.
    assert_eq!(
        sqlstate(
            &mut as_login,
            "CREATE FUNCTION public.unnest(a public.audit_events[]) RETURNS SETOF public.audit_events
             LANGUAGE sql AS 'SELECT * FROM pg_catalog.unnest(a)'"
        )
        .await
        .as_deref(),
        Some("42501")
    );
    // What it is for still works: reading and recording.
    sqlx::query("SELECT COUNT(*) FROM public.patients")
        .execute(&mut as_login)
        .await
        .unwrap();
    sqlx::query(
        "SELECT public.audit_events_append(NULL, 'admin', 'read', 'patient', NULL, NULL, NULL, NULL, NULL, NULL)",
    )
    .execute(&mut as_login)
    .await
    .unwrap();
    as_login.close().await.unwrap();
}

#[tokio::test]
async fn the_login_role_owns_nothing_and_can_grow_no_power() {
    let app = spawn_app().await;
    let copied = app.register_clinic("From the template").await;
    assert_locked_down(&app, copied.id).await;
    // A clinic migrated directly (the template disabled) is laid out alike.
    let direct = app
        .state
        .provisioner
        .clone()
        .from_template(false)
        .provision(
            medicalpro::tenancy::provisioning::NewClinic {
                name: "Migrated".into(),
                email: crate::helpers::unique_email(),
                phone: None,
                country: "FR".into(),
            },
            None,
        )
        .await
        .unwrap();
    assert_locked_down(&app, direct.clinic_id.0).await;
    // Another clinic's login role reaches neither database of the other.
    let mut other = login(&app, copied.id).await;
    let cross: Option<String> = sqlx::query_scalar(
        "SELECT datname::text FROM pg_database
          WHERE has_database_privilege(current_user, oid, 'CONNECT')
            AND datname <> current_database() AND datallowconn",
    )
    .fetch_optional(&mut other)
    .await
    .unwrap();
    assert_eq!(cross, None, "a second database is open to the login role");
    app.cleanup().await;
}

/// Functions with the names and exact argument types of what the trail's
/// functions call, each recording who ran it if it ever runs.
const SHADOWS: &[(&str, &str, &str)] = &[
    (
        "unnest",
        "a public.audit_events[]",
        "SETOF public.audit_events LANGUAGE plpgsql AS $$BEGIN PERFORM public.caught('unnest'); RETURN QUERY SELECT * FROM pg_catalog.unnest(a); END$$",
    ),
    (
        "cardinality",
        "a public.audit_events[]",
        "integer LANGUAGE plpgsql AS $$BEGIN PERFORM public.caught('cardinality'); RETURN pg_catalog.cardinality(a); END$$",
    ),
    (
        "array_to_string",
        "a text[], s text",
        "text LANGUAGE plpgsql AS $$BEGIN PERFORM public.caught('array_to_string'); RETURN pg_catalog.array_to_string(a, s); END$$",
    ),
    (
        "sha256",
        "b bytea",
        "bytea LANGUAGE plpgsql AS $$BEGIN PERFORM public.caught('sha256'); RETURN pg_catalog.sha256(b); END$$",
    ),
    (
        "convert_to",
        "t text, e name",
        "bytea LANGUAGE plpgsql AS $$BEGIN PERFORM public.caught('convert_to'); RETURN pg_catalog.convert_to(t, e); END$$",
    ),
    (
        "concat_ws",
        "s text, a text, b text, c text, d text, e text, f text, g text, h text, i text, j text, k text, l text",
        "text LANGUAGE plpgsql AS $$BEGIN PERFORM public.caught('concat_ws'); RETURN pg_catalog.concat_ws(s, a, b, c, d, e, f, g, h, i, j, k, l); END$$",
    ),
    (
        "date_trunc",
        "f text, t timestamptz",
        "timestamptz LANGUAGE plpgsql AS $$BEGIN PERFORM public.caught('date_trunc'); RETURN pg_catalog.date_trunc(f, t); END$$",
    ),
    (
        "pg_try_advisory_xact_lock",
        "a integer, b integer",
        "boolean LANGUAGE plpgsql AS $$BEGIN PERFORM public.caught('pg_try_advisory_xact_lock'); RETURN pg_catalog.pg_try_advisory_xact_lock(a, b); END$$",
    ),
    (
        "pg_advisory_xact_lock",
        "a integer, b integer",
        "void LANGUAGE plpgsql AS $$BEGIN PERFORM public.caught('pg_advisory_xact_lock'); PERFORM pg_catalog.pg_advisory_xact_lock(a, b); END$$",
    ),
];

/// Shadowing is tried with the widest power a planted object could have:
/// the admin plants the functions in `public` (where the login role may
/// create nothing) and temporary tables named like the trail's in the
/// calling session, then calls every trail function as the login role.
/// Nothing planted ever runs, and the events land in the real chain.
#[tokio::test]
async fn the_trails_definer_functions_run_no_planted_code() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Shadowed").await;
    let database = app.clinic_database(clinic.id);
    let mut admin = app.admin_connection(&database).await;
    let mut plant = String::from(
        "CREATE TABLE public.hijacked (fn text, who text);
         GRANT INSERT ON public.hijacked TO PUBLIC;
         CREATE FUNCTION public.caught(f text) RETURNS void LANGUAGE sql
             AS 'INSERT INTO public.hijacked VALUES (f, current_user)';\n",
    );
    for (name, args, body) in SHADOWS {
        plant.push_str(&format!(
            "CREATE FUNCTION public.{name}({args}) RETURNS {body};\n"
        ));
    }
    sqlx::raw_sql(&plant).execute(&mut admin).await.unwrap();
    // Control: a planted shadow does run when a caller resolves names
    // through `public` the way the trail's functions used to.
    sqlx::raw_sql(
        "SET search_path = pg_catalog, public;
         SELECT count(*) FROM unnest(ARRAY[]::public.audit_events[]);
         RESET search_path;",
    )
    .execute(&mut admin)
    .await
    .unwrap();
    let control_caught: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM public.hijacked")
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert_eq!(control_caught, 1, "the control shadow did not run");
    sqlx::raw_sql("TRUNCATE public.hijacked")
        .execute(&mut admin)
        .await
        .unwrap();
    let before: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM public.audit_events")
        .fetch_one(&mut admin)
        .await
        .unwrap();
    sqlx::raw_sql(&format!(
        "CREATE TEMP TABLE audit_events (LIKE public.audit_events);
         CREATE TEMP TABLE audit_events_pending (LIKE public.audit_events_pending);
         GRANT ALL ON audit_events, audit_events_pending TO PUBLIC;
         SET ROLE \"{database}\";
         SELECT public.audit_events_append(NULL, 'admin', 'read', 'patient', NULL, NULL, 'req', NULL, ARRAY['x'], '{{}}');
         SELECT public.audit_events_seal(10);
         INSERT INTO public.audit_events (id, occurred_at, action, resource_type, prev_hash, hash)
             VALUES (0, now(), 'read', 'patient', '', '');
         SELECT public.audit_events_seal(10);
         RESET ROLE;"
    ))
    .execute(&mut admin)
    .await
    .unwrap();
    let caught: Vec<(String, String)> = sqlx::query_as("SELECT fn, who FROM public.hijacked")
        .fetch_all(&mut admin)
        .await
        .unwrap();
    assert!(caught.is_empty(), "planted code ran: {caught:?}");
    let (after, temp_rows): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM public.audit_events),
                (SELECT COUNT(*) FROM pg_temp.audit_events) + (SELECT COUNT(*) FROM pg_temp.audit_events_pending)",
    )
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert_eq!((after - before, temp_rows), (2, 0));
    admin.close().await.unwrap();
    let report = medicalpro::compliance::verify_clinic(&app.state.databases, ClinicId(clinic.id))
        .await
        .unwrap();
    assert_eq!(report.broken, None);
    app.cleanup().await;
}

/// Issues, through the API, an invoice of one line of `cents` for
/// `patient`: its id and number.
async fn issue_invoice(app: &TestApp, token: &str, patient: &str, cents: i64) -> (String, String) {
    let created = app
        .post(
            "/api/v1/documents",
            token,
            json!({"documentType": "invoice", "patientId": patient,
                   "items": [{"description": "Consultation", "quantity": 1,
                              "unitPriceCents": cents, "vatRate": 0}]}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let invoice = created.id();
    let issued = app
        .patch(
            &format!("/api/v1/documents/{invoice}"),
            token,
            json!({"status": "sent"}),
        )
        .await;
    assert_eq!(issued.status, StatusCode::OK, "{}", issued.body);
    let number = issued.data()["number"].as_str().unwrap().to_owned();
    (invoice, number)
}

/// An issued invoice (this year's: under retention) and the counters, as
/// the login role.
#[tokio::test]
async fn issued_invoices_and_counters_hold_against_the_login_role() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Ledger").await;
    let token = &clinic.token;
    let patient = app.create_patient(token, "Ines", "Invoice").await;
    let (invoice, number) = issue_invoice(&app, token, &patient, 2500).await;

    let mut as_login = login(&app, clinic.id).await;
    let attacks = [
        format!("UPDATE public.documents SET total_cents = 0 WHERE id = '{invoice}'"),
        format!("UPDATE public.documents SET number = 'INV-1999-0001' WHERE id = '{invoice}'"),
        format!("UPDATE public.documents SET status = 'accepted' WHERE id = '{invoice}'"),
        format!("UPDATE public.documents SET deleted_at = now() WHERE id = '{invoice}'"),
        format!("DELETE FROM public.documents WHERE id = '{invoice}'"),
        format!("DELETE FROM public.document_items WHERE document_id = '{invoice}'"),
        format!(
            "INSERT INTO public.document_items (document_id, position, description, quantity,
                unit_price_cents, vat_rate, subtotal_cents, tax_cents, total_cents)
             VALUES ('{invoice}', 9, 'Extra', 1, 100, 0, 100, 0, 100)"
        ),
        "UPDATE public.document_counters SET last_number = last_number - 1".to_owned(),
        "UPDATE public.document_counters SET last_number = last_number + 5".to_owned(),
        "UPDATE public.document_counters SET year = year + 1".to_owned(),
        "INSERT INTO public.document_counters (document_type, year, last_number) VALUES ('invoice', 2099, 41)"
            .to_owned(),
    ];
    assert_refused(&mut as_login, attacks).await;
    // The documented way stays open: an issued invoice is paid.
    assert_eq!(
        sqlstate(
            &mut as_login,
            &format!("UPDATE public.documents SET status = 'paid' WHERE id = '{invoice}'")
        )
        .await,
        None
    );
    as_login.close().await.unwrap();
    let read = app
        .get(&format!("/api/v1/documents/{invoice}"), token)
        .await;
    assert_eq!(read.data()["number"], number.as_str());
    assert_eq!(read.data()["totalCents"], 2500);
    // And numbering goes on, in order.
    let (_, second) = issue_invoice(&app, token, &patient, 1000).await;
    assert!(second.ends_with("-0002"), "{second}");
    app.cleanup().await;
}

/// The databases of this test's prefix.
async fn prefixed_databases(app: &TestApp) -> Vec<String> {
    let mut admin = app.admin_connection("postgres").await;
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT datname::text FROM pg_database WHERE datname LIKE $1 ORDER BY 1",
    )
    .bind(format!("{}\\_%", app.prefix))
    .fetch_all(&mut admin)
    .await
    .unwrap();
    admin.close().await.unwrap();
    names
}

/// Asserts that no object of the code planted before a backup is in the
/// clinic's database.
async fn assert_no_planted_code(app: &TestApp, clinic: Uuid) {
    let mut db = app.clinic_admin(clinic).await;
    let planted: Vec<String> = sqlx::query_scalar(
        "SELECT proname::text FROM pg_proc WHERE proname = 'planted'
         UNION ALL SELECT tgname::text FROM pg_trigger WHERE tgname = 'planted'
         UNION ALL SELECT relname::text FROM pg_class WHERE relname = 'planted_view'",
    )
    .fetch_all(&mut db)
    .await
    .unwrap();
    assert!(planted.is_empty(), "restored from the file: {planted:?}");
    db.close().await.unwrap();
}

/// Restores in place and as a new clinic come out laid out as provisioning
/// makes them, without the code the backed-up database held besides the
/// product's; an edited file is refused before anything changes.
#[tokio::test]
async fn restores_keep_the_layout_and_refuse_an_edited_file() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Restored").await;
    let patient = app.create_patient(&clinic.token, "Rosa", "Restored").await;
    // Code in the backed-up database that is not the product's (as an
    // earlier layout's login role could leave it): the backup holds it, no
    // restore may run or keep it.
    let mut admin = app.clinic_admin(clinic.id).await;
    sqlx::raw_sql(
        "CREATE FUNCTION public.planted() RETURNS trigger LANGUAGE plpgsql
             AS $$BEGIN RAISE EXCEPTION 'planted code ran'; END$$;
         CREATE TRIGGER planted BEFORE INSERT OR UPDATE ON public.patients
             FOR EACH ROW EXECUTE FUNCTION public.planted();
         CREATE VIEW public.planted_view AS SELECT id FROM public.patients;",
    )
    .execute(&mut admin)
    .await
    .unwrap();
    admin.close().await.unwrap();
    let fleet = Fleet::attach(&app.settings).await.unwrap();
    let dir = std::env::temp_dir().join(format!("medicalpro-hostile-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("clinic.dump");
    backup_clinic(&fleet, ClinicId(clinic.id), &file, WhenExists::Refuse)
        .await
        .unwrap();

    // An edited file: refused, nothing made.
    let edited = dir.join("edited.dump");
    let mut bytes = std::fs::read(&file).unwrap();
    let at = bytes.len() - 10;
    bytes[at] ^= 0x01;
    std::fs::write(&edited, &bytes).unwrap();
    let before = prefixed_databases(&app).await;
    let refused = restore(
        &fleet,
        &RestoreOptions {
            clinic: Some(ClinicId(clinic.id)),
            from: edited,
            force: true,
            as_new_clinic: None,
            operator: None,
        },
    )
    .await
    .unwrap_err();
    assert!(
        refused.to_string().contains("could not be decrypted"),
        "{refused}"
    );
    assert_eq!(prefixed_databases(&app).await, before);

    restore(
        &fleet,
        &RestoreOptions {
            clinic: Some(ClinicId(clinic.id)),
            from: file.clone(),
            force: true,
            as_new_clinic: None,
            operator: None,
        },
    )
    .await
    .unwrap();
    app.state.pools.close(ClinicId(clinic.id)).await;
    assert_locked_down(&app, clinic.id).await;
    assert_no_planted_code(&app, clinic.id).await;
    let read = app
        .get(&format!("/api/v1/patients/{patient}"), &clinic.token)
        .await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.body);
    // Writing a patient fires no trigger of the file's.
    let changed = app
        .patch(
            &format!("/api/v1/patients/{patient}"),
            &clinic.token,
            json!({"notes": "after the restore"}),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);

    let copy = restore(
        &fleet,
        &RestoreOptions {
            clinic: Some(ClinicId(clinic.id)),
            from: file,
            force: false,
            as_new_clinic: Some(NewIdentity {
                name: None,
                email: Some(crate::helpers::unique_email()),
            }),
            operator: None,
        },
    )
    .await
    .unwrap();
    assert_locked_down(&app, copy.clinic_id).await;
    assert_no_planted_code(&app, copy.clinic_id).await;
    // The new clinic's password reached PostgreSQL as a SCRAM verifier.
    let mut server = app.admin_connection("postgres").await;
    let secret: String = sqlx::query_scalar("SELECT rolpassword FROM pg_authid WHERE rolname = $1")
        .bind(app.clinic_database(copy.clinic_id))
        .fetch_one(&mut server)
        .await
        .unwrap();
    assert!(secret.starts_with("SCRAM-SHA-256$"), "{secret}");
    server.close().await.unwrap();
    let report =
        medicalpro::compliance::verify_clinic(&app.state.databases, ClinicId(copy.clinic_id))
            .await
            .unwrap();
    assert_eq!(report.broken, None);
    assert!(report.events > 0);
    fleet.close().await;
    std::fs::remove_dir_all(&dir).unwrap();
    app.cleanup().await;
}

/// A clinic laid out by the previous release (its login role owning the
/// database, the schema objects and `CREATE` on `public`; the trail the
/// admin's; no invariants), with code planted by that role, is brought by
/// `migrate` to the current layout: the planted code is gone, nothing is
/// the login role's, and the clinic works with its chain intact.
#[tokio::test]
async fn migrate_takes_an_earlier_layout_from_the_login_role() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Earlier layout").await;
    let patient = app.create_patient(&clinic.token, "Paul", "Planted").await;
    let database = app.clinic_database(clinic.id);
    let owner = owner_role(&app, clinic.id);
    app.state.pools.close(ClinicId(clinic.id)).await;
    let mut server = app.admin_connection("postgres").await;
    sqlx::raw_sql(&format!(
        "ALTER DATABASE \"{database}\" OWNER TO \"{database}\";
         GRANT \"{database}\" TO CURRENT_USER;"
    ))
    .execute(&mut server)
    .await
    .unwrap();
    let mut admin = app.admin_connection(&database).await;
    as_release_before_invariants(&mut admin).await;
    sqlx::raw_sql(&format!(
        "REASSIGN OWNED BY \"{owner}\" TO \"{database}\";
         ALTER SCHEMA public OWNER TO CURRENT_USER;
         ALTER TABLE audit_events OWNER TO CURRENT_USER;
         ALTER TABLE audit_events_pending OWNER TO CURRENT_USER;
         ALTER FUNCTION audit_events_append(uuid, text, text, text, uuid, uuid, text, text, text[], jsonb) OWNER TO CURRENT_USER;
         ALTER FUNCTION audit_events_seal(integer) OWNER TO CURRENT_USER;
         ALTER FUNCTION audit_events_chain_pending(integer) OWNER TO CURRENT_USER;
         ALTER FUNCTION audit_event_payload(audit_events) OWNER TO CURRENT_USER;
         ALTER FUNCTION audit_events_divert() OWNER TO CURRENT_USER;
         ALTER FUNCTION audit_events_frozen() OWNER TO CURRENT_USER;
         GRANT USAGE, CREATE ON SCHEMA public TO \"{database}\";"
    ))
    .execute(&mut admin)
    .await
    .unwrap();
    // What the login role could plant under the earlier layout.
    let mut as_login = login(&app, clinic.id).await;
    sqlx::raw_sql(
        "CREATE TABLE public.whoami (u text, su bool);
         CREATE FUNCTION public.unnest(a public.audit_events[]) RETURNS SETOF public.audit_events
         LANGUAGE plpgsql AS $$BEGIN
           INSERT INTO public.whoami SELECT rolname, rolsuper FROM pg_roles WHERE rolname = current_user;
           RETURN QUERY SELECT * FROM pg_catalog.unnest(a); END$$;
         CREATE FUNCTION public.spy() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN
           INSERT INTO public.whoami SELECT current_user, false; RETURN NEW; END$$;
         CREATE TRIGGER spy BEFORE UPDATE ON public.clinic_settings
             FOR EACH ROW EXECUTE FUNCTION public.spy();
         CREATE VIEW public.peek AS SELECT * FROM public.patients;
         CREATE RULE sneak AS ON UPDATE TO public.practitioners DO ALSO
             INSERT INTO public.whoami VALUES ('rule', false);
         ALTER TABLE public.appointments DROP CONSTRAINT appointments_no_overlap;",
    )
    .execute(&mut as_login)
    .await
    .unwrap();
    as_login.close().await.unwrap();

    let fleet = Fleet::attach(&app.settings).await.unwrap();
    let report = migrate::run(&fleet, &MigrateOptions::default(), |_| {})
        .await
        .unwrap();
    assert_eq!(report.failures().count(), 0, "{:?}", report.clinics);
    assert_eq!(report.clinics[0].applied, [7, 8, 9]);

    let planted: Vec<String> = sqlx::query_scalar(
        "SELECT proname::text FROM pg_proc WHERE proname IN ('unnest', 'spy')
            AND pronamespace = 'public'::regnamespace
         UNION ALL SELECT tgname::text FROM pg_trigger WHERE tgname = 'spy'
         UNION ALL SELECT relname::text FROM pg_class WHERE relname = 'peek'
         UNION ALL SELECT rulename::text FROM pg_rewrite WHERE rulename = 'sneak'",
    )
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert!(planted.is_empty(), "left behind: {planted:?}");
    let overlap: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM pg_constraint WHERE conname = 'appointments_no_overlap'",
    )
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert_eq!(overlap, 1, "the dropped constraint is back");
    // The clinic works, every planted path stays silent, the chain holds.
    let read = app
        .get(&format!("/api/v1/patients/{patient}"), &clinic.token)
        .await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.body);
    let settings = app
        .patch(
            "/api/v1/clinic/settings",
            &clinic.token,
            json!({"locale": "en"}),
        )
        .await;
    assert_eq!(settings.status, StatusCode::OK, "{}", settings.body);
    let witnesses: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM public.whoami")
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert_eq!(witnesses, 0);
    // The role's own table is kept (its rows are the clinic's), now the
    // owner's and closed to the role.
    let mut as_login = login(&app, clinic.id).await;
    assert_eq!(
        sqlstate(&mut as_login, "SELECT * FROM public.whoami")
            .await
            .as_deref(),
        Some("42501")
    );
    as_login.close().await.unwrap();
    sqlx::raw_sql("DROP TABLE public.whoami")
        .execute(&mut admin)
        .await
        .unwrap();
    assert_locked_down(&app, clinic.id).await;
    let report = medicalpro::compliance::verify_clinic(&app.state.databases, ClinicId(clinic.id))
        .await
        .unwrap();
    assert_eq!(report.broken, None);
    admin.close().await.unwrap();
    server.close().await.unwrap();
    fleet.close().await;
    app.cleanup().await;
}

/// `doctor` names every database besides its own that a clinic's login
/// role may connect to (here one opened to it by hand), and no other.
#[tokio::test]
async fn doctor_names_a_database_a_login_role_may_reach() {
    let app = spawn_app().await;
    let exposed = app.register_clinic("Exposed").await;
    let closed = app.register_clinic("Closed").await;
    let clean = medicalpro::ops::doctor::run(&app.settings, 2).await;
    assert!(
        !clean
            .findings
            .iter()
            .any(|f| f.message.contains("may connect")),
        "{clean:?}"
    );
    let extra = format!("{}_extra", app.prefix);
    let mut admin = app.admin_connection("postgres").await;
    for statement in [
        format!("CREATE DATABASE \"{extra}\""),
        format!(
            "REVOKE ALL ON DATABASE \"{extra}\" FROM PUBLIC;
             GRANT CONNECT ON DATABASE \"{extra}\" TO \"{}\";",
            app.clinic_database(exposed.id)
        ),
    ] {
        sqlx::raw_sql(&statement).execute(&mut admin).await.unwrap();
    }
    admin.close().await.unwrap();
    let report = medicalpro::ops::doctor::run(&app.settings, 2).await;
    let warned: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.message.contains("may connect"))
        .collect();
    assert_eq!(warned.len(), 1, "{report:?}");
    assert_eq!(warned[0].clinic_id, Some(exposed.id));
    assert_eq!(
        warned[0].severity,
        medicalpro::ops::doctor::Severity::Warning
    );
    assert!(warned[0].message.contains(&extra), "{}", warned[0].message);
    assert!(report
        .findings
        .iter()
        .all(|f| f.clinic_id != Some(closed.id) || !f.message.contains("may connect")));
    app.cleanup().await;
}
