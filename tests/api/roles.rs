//! The SPEC's role table, row by row: every role against every resource,
//! reading and writing, through real accounts and the real router. The
//! expectations are written out here from the SPEC, independently of
//! `auth::roles`, so a slip in either shows.

use axum::http::{Method, StatusCode};
use serde_json::json;
use uuid::Uuid;

use crate::helpers::spawn_app;

/// `rw`, `r` or `-` for admin, doctor, secretary, readonly (SPEC section 3).
struct Row {
    resource: &'static str,
    collection: &'static str,
    /// A write on the collection; `None` when nobody may write (audit).
    write: Option<(Method, &'static str)>,
    access: [&'static str; 4],
}

fn table() -> Vec<Row> {
    let row = |resource, collection, write: Option<(Method, &'static str)>, access| Row {
        resource,
        collection,
        write,
        access,
    };
    let post = |path| Some((Method::POST, path));
    vec![
        row(
            "patients",
            "/api/v1/patients",
            post("/api/v1/patients"),
            ["rw", "rw", "rw", "r"],
        ),
        row(
            "appointments",
            "/api/v1/appointments",
            post("/api/v1/appointments"),
            ["rw", "rw", "rw", "r"],
        ),
        row(
            "consents",
            "/api/v1/consents",
            post("/api/v1/consents"),
            ["rw", "rw", "rw", "r"],
        ),
        row(
            "documents",
            "/api/v1/documents",
            post("/api/v1/documents"),
            ["rw", "rw", "rw", "r"],
        ),
        row(
            "medical records",
            "/api/v1/medical-records",
            post("/api/v1/medical-records"),
            ["rw", "rw", "-", "-"],
        ),
        row(
            "practitioners",
            "/api/v1/practitioners",
            post("/api/v1/practitioners"),
            ["rw", "r", "r", "r"],
        ),
        row(
            "products and services",
            "/api/v1/products-services",
            post("/api/v1/products-services"),
            ["rw", "r", "r", "r"],
        ),
        row(
            "categories",
            "/api/v1/categories",
            post("/api/v1/categories"),
            ["rw", "r", "r", "r"],
        ),
        row(
            "consent templates",
            "/api/v1/consent-templates",
            post("/api/v1/consent-templates"),
            ["rw", "r", "r", "r"],
        ),
        row(
            "clinic settings",
            "/api/v1/clinic",
            Some((Method::PATCH, "/api/v1/clinic/settings")),
            ["rw", "r", "r", "r"],
        ),
        row(
            "users",
            "/api/v1/users",
            post("/api/v1/users"),
            ["rw", "-", "-", "-"],
        ),
        row("audit", "/api/v1/audit", None, ["r", "-", "-", "-"]),
    ]
}

const ROLES: [&str; 4] = ["admin", "doctor", "secretary", "readonly"];

/// Whether a response is the role table's refusal.
fn refused(status: StatusCode, code: &str) -> bool {
    status == StatusCode::FORBIDDEN && code == "forbidden"
}

#[tokio::test]
async fn every_role_gets_exactly_the_access_the_spec_table_gives() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Roles").await;
    let mut tokens = vec![clinic.token.clone()];
    for role in &ROLES[1..] {
        let email = format!("{role}-{}@example.fr", app.prefix);
        let created = app
            .post(
                "/api/v1/users",
                &clinic.token,
                json!({"email": email, "password": "password123", "firstName": "R", "lastName": role, "role": role}),
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
        let login = app.login(&email, "password123").await;
        tokens.push(login.data()["accessToken"].as_str().unwrap().to_owned());
    }
    let mut checked = 0;
    for row in table() {
        for (index, role) in ROLES.iter().enumerate() {
            let token = &tokens[index];
            let access = row.access[index];
            let may_read = access.contains('r');
            let may_write = access.contains('w');
            let read = app.get(row.collection, token).await;
            assert_eq!(
                refused(read.status, read.code()),
                !may_read,
                "{role} reading {}: {} {}",
                row.resource,
                read.status,
                read.body
            );
            if may_read {
                assert_eq!(
                    read.status,
                    StatusCode::OK,
                    "{role} reading {}: {}",
                    row.resource,
                    read.body
                );
            }
            if row.collection.ends_with('s') {
                // One item by id: not found when allowed, refused otherwise.
                let one = app
                    .get(&format!("{}/{}", row.collection, Uuid::new_v4()), token)
                    .await;
                assert_eq!(
                    refused(one.status, one.code()),
                    !may_read,
                    "{role} reading one of {}",
                    row.resource
                );
                if may_read {
                    assert_eq!(one.status, StatusCode::NOT_FOUND, "{}", one.body);
                }
            }
            if let Some((method, path)) = &row.write {
                // An empty body: refused before it is read, or invalid.
                let write = app
                    .call(method.clone(), path, Some(token), Some(json!({})))
                    .await;
                assert_eq!(
                    refused(write.status, write.code()),
                    !may_write,
                    "{role} writing {}: {} {}",
                    row.resource,
                    write.status,
                    write.body
                );
                if may_write {
                    // Allowed: then judged on its body, exactly as documented.
                    let expected = if *method == Method::POST {
                        (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed")
                    } else {
                        (StatusCode::OK, "")
                    };
                    assert_eq!(
                        (write.status, write.code()),
                        expected,
                        "{role} writing {}: {}",
                        row.resource,
                        write.body
                    );
                }
                if row.collection.ends_with('s') {
                    let delete = app
                        .delete(&format!("{}/{}", row.collection, Uuid::new_v4()), token)
                        .await;
                    assert_eq!(
                        refused(delete.status, delete.code()),
                        !may_write,
                        "{role} deleting {}",
                        row.resource
                    );
                    if may_write {
                        assert_eq!(delete.status, StatusCode::NOT_FOUND, "{}", delete.body);
                    }
                }
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 48);
    app.cleanup().await;
}
