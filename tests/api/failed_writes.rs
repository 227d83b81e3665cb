//! A write that fails after its transaction began (a refusal once the row is
//! locked) rolls back before its connection serves anyone else: the next
//! write of the same row goes through at once, on every write route.

use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp, TestClinic};

/// One write route: the row's path, a body refused once the row is locked,
/// and a valid body for the same row.
struct Route {
    path: String,
    refused: Value,
    valid: Value,
}

async fn created(app: &TestApp, clinic: &TestClinic, path: &str, body: Value) -> String {
    let response = app.post(path, &clinic.token, body).await;
    assert_eq!(
        response.status,
        StatusCode::CREATED,
        "{path}: {}",
        response.body
    );
    response.id()
}

/// A row of every resource a clinic writes, and a refused and a valid
/// change of each.
async fn routes(app: &TestApp, clinic: &TestClinic) -> Vec<Route> {
    let patient = app.create_patient(&clinic.token, "Rosa", "Rollback").await;
    let practitioner = created(
        app,
        clinic,
        "/api/v1/practitioners",
        json!({"firstName": "Paul", "lastName": "Locked"}),
    )
    .await;
    let appointment = created(
        app,
        clinic,
        "/api/v1/appointments",
        json!({"patientId": patient, "practitionerId": practitioner,
               "startAt": "2030-01-07T09:00:00+01:00", "endAt": "2030-01-07T09:30:00+01:00"}),
    )
    .await;
    let record = created(
        app,
        clinic,
        "/api/v1/medical-records",
        json!({"patientId": patient, "title": "Note", "content": "note"}),
    )
    .await;
    let template = created(
        app,
        clinic,
        "/api/v1/consent-templates",
        json!({"title": "Soins", "body": "I agree."}),
    )
    .await;
    let consent = created(
        app,
        clinic,
        "/api/v1/consents",
        json!({"patientId": patient, "templateId": template}),
    )
    .await;
    let document = created(
        app,
        clinic,
        "/api/v1/documents",
        json!({"documentType": "quote", "patientId": patient,
               "items": [{"description": "Consultation", "quantity": 1,
                          "unitPriceCents": 2000, "vatRate": 0}]}),
    )
    .await;
    let category = created(app, clinic, "/api/v1/categories", json!({"name": "Soins"})).await;
    let product = created(
        app,
        clinic,
        "/api/v1/products-services",
        json!({"name": "Consultation", "unitPriceCents": 2500}),
    )
    .await;
    let unknown = uuid::Uuid::new_v4();
    let route = |path: String, refused: Value, valid: Value| Route {
        path,
        refused,
        valid,
    };
    vec![
        route(
            format!("/api/v1/patients/{patient}"),
            json!({"lastName": null}),
            json!({"lastName": "Rolled"}),
        ),
        route(
            format!("/api/v1/practitioners/{practitioner}"),
            json!({"lastName": null}),
            json!({"lastName": "Unlocked"}),
        ),
        route(
            format!("/api/v1/appointments/{appointment}"),
            json!({"endAt": "2030-01-07T08:00:00+01:00"}),
            json!({"reason": "Checkup"}),
        ),
        route(
            format!("/api/v1/appointments/{appointment}/items"),
            json!({"productServiceId": unknown}),
            json!({"productServiceId": product}),
        ),
        route(
            format!("/api/v1/medical-records/{record}"),
            json!({"title": null, "content": null}),
            json!({"title": "Note, revised"}),
        ),
        route(
            format!("/api/v1/consent-templates/{template}"),
            json!({"title": null}),
            json!({"title": "Soins courants"}),
        ),
        route(
            format!("/api/v1/consents/{consent}"),
            json!({"templateId": unknown}),
            json!({"status": "signed"}),
        ),
        route(
            format!("/api/v1/documents/{document}"),
            json!({"patientId": unknown}),
            json!({"dueDate": "2030-02-01"}),
        ),
        route(
            format!("/api/v1/categories/{category}"),
            json!({"name": null}),
            json!({"name": "Soins courants"}),
        ),
        route(
            format!("/api/v1/products-services/{product}"),
            json!({"categoryIds": [unknown]}),
            json!({"name": "Consultation longue"}),
        ),
        route(
            "/api/v1/clinic/settings".to_owned(),
            json!({"timezone": "Mars/Olympus_Mons"}),
            json!({"locale": "en"}),
        ),
    ]
}

/// A refused write leaves no transaction open: the valid write of the same
/// row that follows, from a second instance (so on another connection),
/// answers at once (it would wait on the refused one's row lock
/// otherwise), and the registry counts the rollback.
#[tokio::test]
async fn a_refused_write_leaves_no_lock_behind_on_any_write_route() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Rollback").await;
    let mut monitor = app.admin_connection("postgres").await;
    let database = app.clinic_database(clinic.id);
    let other = app.second_instance().await;
    let routes = routes(&app, &clinic).await;
    let count = routes.len();
    for route in routes {
        let method = if route.path.ends_with("/items") {
            Method::POST
        } else {
            Method::PATCH
        };
        let before = app.state.pools.rolled_back_on_release();
        let refused = app
            .call(
                method.clone(),
                &route.path,
                Some(&clinic.token),
                Some(route.refused),
            )
            .await;
        assert!(
            refused.status.is_client_error(),
            "{}: {} {}",
            route.path,
            refused.status,
            refused.body
        );
        // The refusal came after BEGIN: its transaction was rolled back.
        let deadline = Instant::now() + Duration::from_secs(2);
        while app.state.pools.rolled_back_on_release() == before && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(
            app.state.pools.rolled_back_on_release(),
            before + 1,
            "{}: refused before its transaction began, or not rolled back",
            route.path
        );
        let open: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_stat_activity
              WHERE datname = $1 AND state LIKE 'idle in transaction%'",
        )
        .bind(&database)
        .fetch_one(&mut monitor)
        .await
        .unwrap();
        assert_eq!(
            open, 0,
            "{}: a connection idles in a transaction",
            route.path
        );
        let started = Instant::now();
        let valid = other.call(method, &route.path, Some(&clinic.token), Some(route.valid));
        let valid = tokio::time::timeout(Duration::from_secs(5), valid)
            .await
            .unwrap_or_else(|_| panic!("{}: the valid write waited on a lock", route.path));
        assert!(
            valid.status.is_success(),
            "{}: {} {}",
            route.path,
            valid.status,
            valid.body
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{}: the valid write waited {:?}",
            route.path,
            started.elapsed()
        );
    }
    assert_eq!(app.state.pools.refused_in_transaction(), 0);
    let scraped = app.call(Method::GET, "/metrics", None, None).await;
    let text = scraped.body.as_str().expect("text body");
    for line in [
        format!("medicalpro_clinic_rollbacks_on_release_total {count}"),
        "medicalpro_clinic_connections_refused_in_transaction_total 0".to_owned(),
    ] {
        assert!(text.lines().any(|l| l == line), "{line} missing");
    }
    other.close_instance().await;
    app.cleanup().await;
}
