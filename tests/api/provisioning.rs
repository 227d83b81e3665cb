use std::time::{Duration, Instant};

use axum::http::StatusCode;
use medicalpro::tenancy::provisioning::{FailAfter, NewClinic};
use serde_json::json;

use crate::helpers::spawn_app;

/// A client that goes away while its clinic is being provisioned (or a
/// request timeout) does not leave the clinic half made: provisioning goes
/// on to the end, and its admin logs in.
#[tokio::test]
async fn a_registration_abandoned_midway_is_provisioned_all_the_same() {
    let app = spawn_app().await;
    let email = format!("abandoned@{}.example.fr", app.prefix);
    let password = "correct horse battery";
    let registering = app.register(json!({
        "clinicName": "Abandoned", "email": email, "password": password,
        "firstName": "Ada", "lastName": "Gone"
    }));
    let central = app.state.databases.central.clone();
    let claimed = async {
        loop {
            let found: bool =
                sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM companies WHERE email = $1)")
                    .bind(&email)
                    .fetch_one(&central)
                    .await
                    .unwrap();
            if found {
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    };
    // The registration is dropped the moment its clinic's row exists.
    tokio::select! {
        answer = registering => panic!("answered before it could be abandoned: {}", answer.body),
        () = claimed => {}
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let login = app.login(&email, password).await;
        if login.status == StatusCode::OK {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never provisioned: {} {}",
            login.status,
            login.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.cleanup().await;
}

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
async fn a_clinic_database_belongs_to_its_owner_role_and_is_closed_to_public() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Owned").await;
    crate::hostile_tenant::assert_locked_down(&app, clinic.id).await;
    let mut clinic_db = app.clinic_admin(clinic.id).await;
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
