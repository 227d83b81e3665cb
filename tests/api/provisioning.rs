use axum::http::StatusCode;
use medicalpro::tenancy::provisioning::{FailAfter, NewClinic};

use crate::helpers::spawn_app;

#[tokio::test]
async fn a_failure_midway_leaves_nothing_behind() {
    let app = spawn_app().await;
    for step in [
        FailAfter::RoleCreated,
        FailAfter::DatabaseCreated,
        FailAfter::Migrated,
    ] {
        let provisioner = app.state.provisioner.clone().failing_after(step);
        let clinic = NewClinic {
            name: "Doomed".into(),
            email: format!("doomed-{step:?}@example.fr").to_lowercase(),
            phone: None,
            country: "FR".into(),
        };
        assert!(
            provisioner.provision(clinic, None).await.is_err(),
            "{step:?}"
        );
        let mut admin = app.admin_connection("postgres").await;
        let pattern = format!("{}\\_clinic\\_%", app.prefix);
        let databases: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM pg_database WHERE datname LIKE $1")
                .bind(&pattern)
                .fetch_one(&mut admin)
                .await
                .unwrap();
        let roles: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM pg_roles WHERE rolname LIKE $1")
            .bind(&pattern)
            .fetch_one(&mut admin)
            .await
            .unwrap();
        let rows: i64 = sqlx::query_scalar(
            "SELECT (SELECT COUNT(*) FROM companies) + (SELECT COUNT(*) FROM users)",
        )
        .fetch_one(&app.state.databases.central)
        .await
        .unwrap();
        assert_eq!(
            (databases, roles, rows),
            (0, 0, 0),
            "left behind after {step:?}"
        );
    }
    // The email is free again: a real registration with it succeeds.
    let clinic = NewClinic {
        name: "Phoenix".into(),
        email: "doomed-migrated@example.fr".into(),
        phone: None,
        country: "FR".into(),
    };
    assert!(app.state.provisioner.provision(clinic, None).await.is_ok());
    app.cleanup().await;
}

#[tokio::test]
async fn a_clinic_database_is_closed_to_public_and_owned_by_its_role() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Owned").await;
    let name = app.clinic_database(clinic.id);
    let mut admin = app.admin_connection("postgres").await;
    let (owner, acl): (String, String) = sqlx::query_as(
        "SELECT pg_get_userbyid(datdba)::text, COALESCE(datacl::text, '') FROM pg_database WHERE datname = $1",
    )
    .bind(&name)
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert_eq!(owner, name);
    // No "=c" entry (PUBLIC with CONNECT) in the ACL, and an ACL exists.
    assert!(
        !acl.is_empty() && !acl.contains("\"=c") && !acl.contains("{=c") && !acl.contains(",=c"),
        "{acl}"
    );
    let mut clinic_db = app.admin_connection(&name).await;
    let foreign_owned: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = 'public' AND pg_get_userbyid(c.relowner) <> $1
            AND c.relname NOT LIKE 'audit\\_events%'",
    )
    .bind(&name)
    .fetch_one(&mut clinic_db)
    .await
    .unwrap();
    assert_eq!(foreign_owned, 0);
    // The audit trail alone belongs to the admin role, out of the clinic role's reach.
    let audit_owner: String = sqlx::query_scalar(
        "SELECT pg_get_userbyid(relowner)::text FROM pg_class WHERE relname = 'audit_events'",
    )
    .fetch_one(&mut clinic_db)
    .await
    .unwrap();
    assert_ne!(audit_owner, name);
    let version: i64 = sqlx::query_scalar("SELECT schema_version FROM companies WHERE id = $1")
        .bind(clinic.id)
        .fetch_one(&app.state.databases.central)
        .await
        .unwrap();
    assert_eq!(
        version,
        medicalpro::migrations::latest_version(&medicalpro::migrations::CLINIC)
    );
    let settings: (String, String, String) =
        sqlx::query_as("SELECT timezone, currency::text, locale FROM clinic_settings")
            .fetch_one(&mut clinic_db)
            .await
            .unwrap();
    assert_eq!(
        settings,
        ("Europe/Paris".into(), "EUR".into(), "fr-FR".into())
    );
    assert_eq!(
        app.get("/api/v1/patients", &clinic.token).await.status,
        StatusCode::OK
    );
    app.cleanup().await;
}
