//! The shared tier: clinics in schemas of a pod database, reached through
//! the pod's shared connections, each transaction in one clinic's serving
//! role. Its isolation is attacked here as the dedicated tier's is in
//! `isolation` and `hostile_tenant`: with the tokens, with the serving
//! roles, and with the pod's own credentials.

use std::process::Output;

use axum::http::StatusCode;
use medicalpro::config::Tier;
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use crate::helpers::{spawn_app_with, TestApp};

/// An app whose clinics go to the shared tier, `pod_max` to a pod.
async fn shared_app(pod_max: u32) -> TestApp {
    spawn_app_with(|settings| {
        settings.provisioning.default_tier = Tier::Shared;
        settings.provisioning.pod_max_clinics = pod_max;
    })
    .await
}

/// Where a shared clinic lives, and its pod's credentials, unsealed as the
/// server does.
struct Place {
    pod: String,
    pod_password: String,
    schema: String,
    serving: String,
    owner: String,
}

async fn place(app: &TestApp, clinic: Uuid) -> Place {
    let (tier, pod_id, pod, schema, serving, sealed): (
        String,
        Uuid,
        String,
        String,
        String,
        Vec<u8>,
    ) = sqlx::query_as(
        "SELECT c.tier, p.id, p.db_name, c.db_schema, c.db_user, p.db_password_sealed
               FROM companies c JOIN pods p ON p.id = c.pod_id WHERE c.id = $1",
    )
    .bind(clinic)
    .fetch_one(&app.state.databases.central)
    .await
    .expect("a shared clinic's place");
    assert_eq!(tier, "shared");
    let password = app.settings.keys.open(&sealed, pod_id.as_bytes()).unwrap();
    Place {
        pod,
        pod_password: String::from_utf8(password).unwrap(),
        schema,
        serving,
        owner: format!("{}_owner_{}", app.prefix, clinic.simple()),
    }
}

/// The SQLSTATE of a statement that must fail.
async fn refused(conn: &mut PgConnection, sql: &str) -> String {
    match sqlx::raw_sql(sql).execute(&mut *conn).await {
        Ok(_) => panic!("`{sql}` was allowed"),
        Err(sqlx::Error::Database(db)) => db.code().unwrap_or_default().into_owned(),
        Err(other) => panic!("`{sql}`: {other}"),
    }
}

#[tokio::test]
async fn shared_clinics_share_a_pod_and_each_token_reaches_its_own_schema_only() {
    let app = shared_app(10).await;
    let a = app.register_clinic("Shared A").await;
    let b = app.register_clinic("Shared B").await;
    let (place_a, place_b) = (place(&app, a.id).await, place(&app, b.id).await);
    assert_eq!(place_a.pod, place_b.pod, "both in one pod");
    assert_ne!(place_a.schema, place_b.schema);
    let patient_a = app.create_patient(&a.token, "Alice", "Shared").await;
    let patient_b = app.create_patient(&b.token, "Bruno", "Shared").await;

    let list = app.get("/api/v1/patients", &a.token).await;
    assert_eq!(list.status, StatusCode::OK);
    let listed = list.body.to_string();
    assert!(listed.contains(&patient_a) && !listed.contains(&patient_b));
    let across = app
        .get(&format!("/api/v1/patients/{patient_b}"), &a.token)
        .await;
    assert_eq!(across.status, StatusCode::NOT_FOUND, "{}", across.body);

    // Each schema holds its own clinic's rows, and its own chain.
    let mut pod = app.admin_connection(&place_a.pod).await;
    for (place, patient) in [(&place_a, &patient_a), (&place_b, &patient_b)] {
        let ids: Vec<Uuid> =
            sqlx::query_scalar(&format!("SELECT id FROM \"{}\".patients", place.schema))
                .fetch_all(&mut pod)
                .await
                .unwrap();
        assert_eq!(ids, vec![patient.parse::<Uuid>().unwrap()]);
    }
    drop(app.audit_trail(a.id).await);
    let events: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM \"{}\".audit_events WHERE patient_id = $1",
        place_a.schema
    ))
    .bind(patient_b.parse::<Uuid>().unwrap())
    .fetch_one(&mut pod)
    .await
    .unwrap();
    assert_eq!(events, 0, "B's patient is not in A's trail");
    let _ = pod.close().await;
    app.cleanup().await;
}

#[tokio::test]
async fn the_pod_role_reads_nothing_and_a_serving_role_reaches_no_other_schema() {
    let app = shared_app(10).await;
    let a = app.register_clinic("Shared A").await;
    let b = app.register_clinic("Shared B").await;
    app.create_patient(&a.token, "Alice", "Shared").await;
    app.create_patient(&b.token, "Bruno", "Shared").await;
    let (place_a, place_b) = (place(&app, a.id).await, place(&app, b.id).await);
    let mut conn = app
        .connect_as(&place_a.pod, &place_a.pod_password, &place_a.pod)
        .await
        .expect("the pod's login role connects to its pod");

    // The pod's role by itself: no clinic's rows, no owner role.
    for place in [&place_a, &place_b] {
        for table in ["patients", "audit_events", "medical_records"] {
            let sql = format!("SELECT * FROM \"{}\".{table}", place.schema);
            assert_eq!(refused(&mut conn, &sql).await, "42501", "{sql}");
        }
        let sql = format!("SET ROLE \"{}\"", place.owner);
        assert_eq!(refused(&mut conn, &sql).await, "42501", "{sql}");
    }

    // As A's serving role: A's rows, and nothing of B's.
    let as_a = format!(
        "BEGIN; SET LOCAL ROLE \"{}\"; SET LOCAL search_path TO \"{}\";",
        place_a.serving, place_a.schema
    );
    sqlx::raw_sql(&as_a).execute(&mut conn).await.unwrap();
    let own: i64 = sqlx::query_scalar("SELECT count(*) FROM patients")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(own, 1);
    sqlx::raw_sql("ROLLBACK").execute(&mut conn).await.unwrap();
    for attack in [
        format!("SELECT * FROM \"{}\".patients", place_b.schema),
        format!(
            "UPDATE \"{}\".patients SET first_name = 'x'",
            place_b.schema
        ),
        format!("SELECT \"{}\".audit_events_seal(1)", place_b.schema),
        // Nothing it could create would run as another role.
        format!("CREATE TABLE \"{}\".planted (x int)", place_a.schema),
        "CREATE FUNCTION public.planted() RETURNS int LANGUAGE sql AS 'SELECT 1'".to_owned(),
        "CREATE TEMP TABLE planted (x int)".to_owned(),
        "CREATE SCHEMA planted".to_owned(),
        format!("SET ROLE \"{}\"", place_a.owner),
    ] {
        sqlx::raw_sql(&as_a).execute(&mut conn).await.unwrap();
        assert_eq!(refused(&mut conn, &attack).await, "42501", "{attack}");
        sqlx::raw_sql("ROLLBACK").execute(&mut conn).await.unwrap();
    }

    // The catalog's statistics show A's role no value of B's columns.
    let mut admin = app.admin_connection(&place_b.pod).await;
    sqlx::raw_sql(&format!("ANALYZE \"{}\".patients", place_b.schema))
        .execute(&mut admin)
        .await
        .unwrap();
    let _ = admin.close().await;
    sqlx::raw_sql(&as_a).execute(&mut conn).await.unwrap();
    let leaked: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_catalog.pg_stats WHERE schemaname = $1")
            .bind(&place_b.schema)
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(leaked, 0, "pg_stats shows B's values to A's role");
    sqlx::raw_sql("ROLLBACK").execute(&mut conn).await.unwrap();
    let _ = conn.close().await;
    app.cleanup().await;
}

#[tokio::test]
async fn a_pods_credentials_reach_no_other_pod() {
    let app = shared_app(1).await;
    let a = app.register_clinic("Alone A").await;
    let b = app.register_clinic("Alone B").await;
    let (place_a, place_b) = (place(&app, a.id).await, place(&app, b.id).await);
    assert_ne!(place_a.pod, place_b.pod, "a full pod makes a new one");
    let refused = app
        .connect_as(&place_a.pod, &place_a.pod_password, &place_b.pod)
        .await;
    assert!(refused.is_err(), "pod A's role connected to pod B");
    assert!(app
        .connect_as(&place_a.pod, &place_a.pod_password, &app.central_database())
        .await
        .is_err());
    app.cleanup().await;
}

fn medicalpro(app: &TestApp, args: &[&str]) -> Output {
    app.medicalpro_command().args(args).output().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_work_on_a_clinic_schema() {
    let app = shared_app(10).await;
    let behind = app.register_clinic("Behind").await;
    let other = app.register_clinic("Other").await;
    let patient = app.create_patient(&behind.token, "Mona", "Migrated").await;
    let place = place(&app, behind.id).await;
    let latest = medicalpro::migrations::latest_version(&medicalpro::migrations::CLINIC);

    // `clinic list` shows the tier and the schema.
    let list = medicalpro(&app, &["clinic", "list"]);
    let listed = String::from_utf8_lossy(&list.stdout);
    let line = listed
        .lines()
        .find(|l| l.contains(&behind.id.to_string()))
        .expect("the clinic is listed");
    assert!(
        line.contains("shared") && line.contains(&place.schema),
        "{line}"
    );
    // Each schema's size is read in its pod (`clinic list`, `/metrics`).
    let sizes = medicalpro::tenancy::sizes::read(&app.state.databases)
        .await
        .unwrap();
    for id in [behind.id, other.id] {
        let size = sizes.get(&id).expect("a size for each shared clinic");
        assert!(size.shared && size.bytes > 100_000, "{size:?}");
    }

    // `migrate` brings one schema forward and leaves the others alone.
    let mut db = app.clinic_admin(behind.id).await;
    sqlx::raw_sql(crate::hostile_tenant::UNDO_9)
        .execute(&mut db)
        .await
        .unwrap();
    let migrated = medicalpro(&app, &["migrate"]);
    let stdout = String::from_utf8_lossy(&migrated.stdout);
    assert!(migrated.status.success(), "{stdout}");
    assert!(
        stdout.contains(&format!("{} {} -> {latest}", behind.id, latest - 1)),
        "{stdout}"
    );
    assert!(!stdout.contains(&other.id.to_string()), "{stdout}");
    let column: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM information_schema.columns
                         WHERE table_schema = current_schema() AND table_name = 'clinic_settings'
                           AND column_name = 'siret')",
    )
    .fetch_one(&mut db)
    .await
    .unwrap();
    assert!(column, "the migration ran in the clinic's schema");
    let _ = db.close().await;
    let search = app.get("/api/v1/patients?search=migr", &behind.token).await;
    assert!(
        search.body.to_string().contains(&patient),
        "{}",
        search.body
    );

    // The audit chain verifies per schema; `doctor` finds nothing wrong.
    let verified = medicalpro(
        &app,
        &["audit", "verify", "--clinic", &behind.id.to_string()],
    );
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stdout)
    );
    let doctor = medicalpro(&app, &["doctor"]);
    assert!(
        doctor.status.success(),
        "{}{}",
        String::from_utf8_lossy(&doctor.stdout),
        String::from_utf8_lossy(&doctor.stderr)
    );

    // Suspension stops the clinic at once and only it.
    let suspended = medicalpro(&app, &["clinic", "suspend", &behind.id.to_string()]);
    assert!(suspended.status.success());
    let refused = app.get("/api/v1/patients", &behind.token).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    let served = app.get("/api/v1/patients", &other.token).await;
    assert_eq!(served.status, StatusCode::OK);
    app.cleanup().await;
}

/// The spare schemas of the app's pods, polled until there are `count`
/// (or ten seconds have passed).
async fn spares_when(app: &TestApp, count: i64) -> Vec<Uuid> {
    for _ in 0..200 {
        let spares: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM pod_spares ORDER BY created_at")
            .fetch_all(&app.state.databases.central)
            .await
            .unwrap();
        if spares.len() as i64 >= count {
            return spares;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the pod never had {count} spare schema(s)");
}

#[tokio::test]
async fn a_new_shared_clinic_takes_a_spare_schema_laid_out_ahead() {
    let app = shared_app(10).await;
    let first = app.register_clinic("First").await;
    let spare = spares_when(&app, 1).await[0];
    assert_ne!(spare, first.id);
    let second = app.register_clinic("Second").await;
    assert_eq!(second.id, spare, "the new clinic took the spare and its id");
    let patient = app.create_patient(&second.token, "Sara", "Spare").await;
    let read = app
        .get(&format!("/api/v1/patients/{patient}"), &second.token)
        .await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.body);
    let settings = app.get("/api/v1/clinic", &second.token).await;
    assert_eq!(settings.data()["name"], "Second", "{}", settings.body);
    let next = spares_when(&app, 1).await;
    assert!(
        !next.contains(&spare),
        "the taken spare is gone from the list"
    );
    app.cleanup().await;
}

/// Each table's name, row count and a hash of its rows; and the audit
/// chain's head (id and hash).
type Fingerprint = (Vec<(String, i64, String)>, (i64, Vec<u8>));

/// The clinic's [`Fingerprint`], as the admin sees it in the clinic's place.
async fn fingerprint(app: &TestApp, clinic: Uuid) -> Fingerprint {
    drop(app.audit_trail(clinic).await);
    let mut conn = app.clinic_admin(clinic).await;
    let mut tables = Vec::new();
    for table in [
        "clinic_settings",
        "patients",
        "practitioners",
        "appointments",
        "audit_events",
        "_sqlx_migrations",
    ] {
        let (count, hash): (i64, Option<String>) = sqlx::query_as(&format!(
            "SELECT count(*), md5(string_agg(t::text, '|' ORDER BY t::text)) FROM {table} t"
        ))
        .fetch_one(&mut conn)
        .await
        .unwrap();
        tables.push((table.to_owned(), count, hash.unwrap_or_default()));
    }
    let head = sqlx::query_as("SELECT id, hash FROM audit_events ORDER BY id DESC LIMIT 1")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let _ = conn.close().await;
    (tables, head)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clinic_moves_between_tiers_both_ways_whole() {
    let app = spawn_app_with(|settings| {
        settings.provisioning.default_tier = Tier::Dedicated;
    })
    .await;
    let clinic = app.register_clinic("Moving").await;
    let neighbour = app.register_clinic("Staying").await;
    let patient = app.create_patient(&clinic.token, "Théo", "Tiers").await;
    let practitioner = app
        .post(
            "/api/v1/practitioners",
            &clinic.token,
            serde_json::json!({"firstName": "Claude", "lastName": "Bernard"}),
        )
        .await
        .id();
    let booked = app
        .post(
            "/api/v1/appointments",
            &clinic.token,
            serde_json::json!({"patientId": patient, "practitionerId": practitioner,
                "startAt": "2031-03-03T09:00:00Z", "endAt": "2031-03-03T09:30:00Z"}),
        )
        .await;
    assert_eq!(booked.status, StatusCode::CREATED, "{}", booked.body);
    let id = clinic.id.to_string();
    let mut before = fingerprint(&app, clinic.id).await;

    for (tier, shared) in [("shared", true), ("dedicated", false)] {
        let moved = medicalpro(&app, &["clinic", "move", &id, "--tier", tier]);
        assert!(
            moved.status.success(),
            "{}{}",
            String::from_utf8_lossy(&moved.stdout),
            String::from_utf8_lossy(&moved.stderr)
        );
        let (on, schema): (String, Option<String>) =
            sqlx::query_as("SELECT tier, db_schema FROM companies WHERE id = $1")
                .bind(clinic.id)
                .fetch_one(&app.state.databases.central)
                .await
                .unwrap();
        assert_eq!((on.as_str(), schema.is_some()), (tier, shared));
        let after = fingerprint(&app, clinic.id).await;
        assert_eq!(
            after, before,
            "rows, hashes and chain head equal after the move to {tier}"
        );
        let verified = medicalpro(&app, &["audit", "verify", "--clinic", &id]);
        assert!(
            verified.status.success(),
            "{}",
            String::from_utf8_lossy(&verified.stdout)
        );
        // The clinic serves from its new place, reads and writes.
        let read = app
            .get(&format!("/api/v1/patients/{patient}"), &clinic.token)
            .await;
        assert_eq!(read.status, StatusCode::OK, "{}", read.body);
        app.create_patient(&clinic.token, "Nina", tier).await;
        before = fingerprint(&app, clinic.id).await;
    }
    // The shared place it left is gone, the neighbour untouched; its login
    // role is a member of no pod's role.
    let mut admin = app.admin_connection("postgres").await;
    let memberships: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid
          WHERE r.rolname = $1",
    )
    .bind(app.clinic_database(clinic.id))
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert_eq!(memberships, 0);
    let _ = admin.close().await;
    let served = app.get("/api/v1/patients", &neighbour.token).await;
    assert_eq!(served.status, StatusCode::OK);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_clinic_is_backed_up_and_restored_in_its_schema() {
    let app = shared_app(10).await;
    let clinic = app.register_clinic("Backed up").await;
    let neighbour = app.register_clinic("Neighbour").await;
    let kept = app.create_patient(&clinic.token, "Kept", "Backup").await;
    let other = app.create_patient(&neighbour.token, "Other", "Pod").await;
    let dir = std::env::temp_dir().join(format!("medicalpro-shared-{}", app.prefix));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("clinic.dump");
    let file = file.to_str().unwrap();
    let id = clinic.id.to_string();
    let backup = medicalpro(&app, &["backup", "--clinic", &id, "--out", file]);
    assert!(
        backup.status.success(),
        "{}",
        String::from_utf8_lossy(&backup.stderr)
    );
    let before = fingerprint(&app, clinic.id).await;

    let lost = app.create_patient(&clinic.token, "Lost", "After").await;
    let restored = medicalpro(
        &app,
        &["restore", "--clinic", &id, "--from", file, "--force"],
    );
    assert!(
        restored.status.success(),
        "{}{}",
        String::from_utf8_lossy(&restored.stdout),
        String::from_utf8_lossy(&restored.stderr)
    );
    let list = app
        .get("/api/v1/patients", &clinic.token)
        .await
        .body
        .to_string();
    assert!(list.contains(&kept) && !list.contains(&lost), "{list}");
    let after = fingerprint(&app, clinic.id).await;
    let patients = |f: &Fingerprint| f.0.iter().find(|(t, _, _)| t == "patients").cloned();
    assert_eq!(
        patients(&after),
        patients(&before),
        "the backup's patients, exactly"
    );
    let verified = medicalpro(&app, &["audit", "verify", "--clinic", &id]);
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stdout)
    );
    // The neighbour in the same pod is untouched, and the file holds only
    // this clinic: restored as a new (dedicated) clinic, it has its rows.
    let neighbours = app
        .get("/api/v1/patients", &neighbour.token)
        .await
        .body
        .to_string();
    assert!(neighbours.contains(&other), "{neighbours}");
    let copy = medicalpro(
        &app,
        &["restore", "--as-new-clinic", "--from", file, "--json"],
    );
    assert!(
        copy.status.success(),
        "{}",
        String::from_utf8_lossy(&copy.stderr)
    );
    let copy_id: Uuid = serde_json::from_slice::<serde_json::Value>(&copy.stdout).unwrap()
        ["clinicId"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let mut conn = app.clinic_admin(copy_id).await;
    let names: Vec<String> = sqlx::query_scalar("SELECT last_name FROM patients ORDER BY 1")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert_eq!(names, vec!["Backup".to_owned()]);
    let _ = conn.close().await;
    let _ = std::fs::remove_dir_all(&dir);
    app.cleanup().await;
}

/// `keys rotate` renews each pod's password under the new key: the pod's
/// old password is refused, and a server given the new key serves the
/// pod's clinics.
#[tokio::test]
async fn a_rotation_renews_each_pods_password() {
    let app = shared_app(10).await;
    let clinic = app.register_clinic("Rotated").await;
    app.create_patient(&clinic.token, "Rita", "Rotation").await;
    let old = place(&app, clinic.id).await;
    let new_key = medicalpro::crypto::MasterKey::generate();
    let fleet = medicalpro::ops::Fleet::attach(&app.settings).await.unwrap();
    let rotation = medicalpro::ops::keys::rotate(&fleet, &new_key)
        .await
        .unwrap();
    assert!(rotation.failed.is_empty(), "{:?}", rotation.failed);
    fleet.close().await;
    assert!(app
        .connect_as(&old.pod, &old.pod_password, &old.pod)
        .await
        .is_err());
    let renewed = app
        .instance_with(|settings| {
            *settings = crate::helpers::keyed(settings, new_key.clone(), None);
        })
        .await;
    let listed = renewed.get("/api/v1/patients", &clinic.token).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    assert_eq!(listed.body["pagination"]["total"], 1);
    renewed.close_instance().await;
    app.cleanup().await;
}
