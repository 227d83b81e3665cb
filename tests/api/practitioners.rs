use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::helpers::spawn_app;
use crate::users::staff;

#[tokio::test]
async fn practitioner_lifecycle_create_list_update_delete() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Practitioners").await;
    let created = app
        .post(
            "/api/v1/practitioners",
            &clinic.token,
            json!({"firstName": "Louis", "lastName": "Pasteur", "specialty": "Microbiologie",
                   "licenseNumber": "RPPS 10001234567", "email": "louis@example.fr",
                   "phone": "+33 1 45 68 80 00"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.id();
    assert_eq!(created.data()["isActive"], true);
    assert!(created.data()["userId"].is_null());
    assert!(created.data()["updatedAt"].is_string());
    for (first, last, specialty) in [
        ("Marie", "Curie", "Radiologie"),
        ("René", "Laennec", "Pneumologie"),
    ] {
        let response = app
            .post(
                "/api/v1/practitioners",
                &clinic.token,
                json!({"firstName": first, "lastName": last, "specialty": specialty}),
            )
            .await;
        assert_eq!(response.status, StatusCode::CREATED);
    }
    let list = app.get("/api/v1/practitioners", &clinic.token).await;
    assert_eq!(list.body["pagination"]["total"], 3);
    let names: Vec<&str> = list
        .data()
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["lastName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Curie", "Laennec", "Pasteur"]);
    for (search, expected) in [
        ("pasteur", 1),
        ("radio", 1),
        ("Louis%20Pasteur", 1),
        ("ologie", 3),
        ("x", 0),
    ] {
        let found = app
            .get(
                &format!("/api/v1/practitioners?search={search}"),
                &clinic.token,
            )
            .await;
        assert_eq!(found.body["pagination"]["total"], expected, "{search}");
    }
    let second_page = app
        .get("/api/v1/practitioners?limit=2&offset=2", &clinic.token)
        .await;
    assert_eq!(second_page.data().as_array().unwrap().len(), 1);

    let path = format!("/api/v1/practitioners/{id}");
    let patched = app
        .patch(
            &path,
            &clinic.token,
            json!({"phone": null, "isActive": false}),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    assert!(patched.data()["phone"].is_null());
    assert_eq!(patched.data()["isActive"], false);
    assert_eq!(patched.data()["specialty"], "Microbiologie");
    let put = app
        .call(
            Method::PUT,
            &path,
            Some(&clinic.token),
            Some(json!({"specialty": "Chimie"})),
        )
        .await;
    assert_eq!(put.data()["specialty"], "Chimie");
    assert_eq!(put.data()["isActive"], false);
    assert_eq!(
        app.get(&path, &clinic.token).await.data()["specialty"],
        "Chimie"
    );

    assert_eq!(
        app.delete(&path, &clinic.token).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.get(&path, &clinic.token).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.patch(&path, &clinic.token, json!({"specialty": "x"}))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let list = app.get("/api/v1/practitioners", &clinic.token).await;
    assert_eq!(list.body["pagination"]["total"], 2);
    app.cleanup().await;
}

#[tokio::test]
async fn practitioner_requests_name_each_invalid_field() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Validation").await;
    let refused = app
        .post(
            "/api/v1/practitioners",
            &clinic.token,
            json!({"firstName": "  ", "email": "nope", "phone": "call me",
                   "userId": uuid::Uuid::new_v4()}),
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    let mut fields = refused.detail_fields();
    fields.sort();
    assert_eq!(
        fields,
        ["email", "firstName", "lastName", "phone", "userId"]
    );
    let shape = app
        .post(
            "/api/v1/practitioners",
            &clinic.token,
            json!({"firstName": "A", "lastName": "B", "userId": "not-a-uuid", "isActive": "yes"}),
        )
        .await;
    assert_eq!(shape.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(!shape.detail_fields().is_empty());
    app.cleanup().await;
}

#[tokio::test]
async fn a_practitioner_links_one_live_account_of_its_own_clinic() {
    let app = spawn_app().await;
    let a = app.register_clinic("Alpha").await;
    let b = app.register_clinic("Beta").await;
    let doctor = staff(&app, &a.token, "doctor").await;
    let b_doctor = staff(&app, &b.token, "doctor").await;
    let body = |user: &str| json!({"firstName": "Jean", "lastName": "Martin", "userId": user});

    let linked = app
        .post("/api/v1/practitioners", &a.token, body(&doctor.id))
        .await;
    assert_eq!(linked.status, StatusCode::CREATED, "{}", linked.body);
    assert_eq!(linked.data()["userId"], doctor.id.as_str());
    // One practitioner per account.
    let twice = app
        .post("/api/v1/practitioners", &a.token, body(&doctor.id))
        .await;
    assert_eq!(
        (twice.status, twice.code()),
        (StatusCode::CONFLICT, "conflict")
    );
    // Another clinic's account, or no account at all: 422 naming userId.
    for user in [b_doctor.id.clone(), uuid::Uuid::new_v4().to_string()] {
        let refused = app
            .post("/api/v1/practitioners", &a.token, body(&user))
            .await;
        assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(refused.detail_fields(), ["userId"]);
        let other = app
            .post(
                "/api/v1/practitioners",
                &a.token,
                json!({"firstName": "X", "lastName": "Y"}),
            )
            .await;
        let patched = app
            .patch(
                &format!("/api/v1/practitioners/{}", other.id()),
                &a.token,
                json!({"userId": user}),
            )
            .await;
        assert_eq!(patched.detail_fields(), ["userId"]);
    }
    // Unlinking frees the account for another practitioner.
    let path = format!("/api/v1/practitioners/{}", linked.id());
    let unlinked = app.patch(&path, &a.token, json!({"userId": null})).await;
    assert!(unlinked.data()["userId"].is_null());
    let relinked = app
        .post("/api/v1/practitioners", &a.token, body(&doctor.id))
        .await;
    assert_eq!(relinked.status, StatusCode::CREATED, "{}", relinked.body);
    // Deleting the account unlinks it; a deleted account cannot be linked.
    app.delete(&format!("/api/v1/users/{}", doctor.id), &a.token)
        .await;
    let after = app
        .get(
            &format!("/api/v1/practitioners/{}", relinked.id()),
            &a.token,
        )
        .await;
    assert!(after.data()["userId"].is_null(), "{}", after.body);
    let deleted = app
        .patch(&path, &a.token, json!({"userId": doctor.id}))
        .await;
    assert_eq!(deleted.detail_fields(), ["userId"]);
    app.cleanup().await;
}

#[tokio::test]
async fn another_clinics_practitioners_are_not_found() {
    let app = spawn_app().await;
    let a = app.register_clinic("Alpha").await;
    let b = app.register_clinic("Beta").await;
    let theirs = app
        .post(
            "/api/v1/practitioners",
            &b.token,
            json!({"firstName": "Secret", "lastName": "Practitioner"}),
        )
        .await
        .id();
    let path = format!("/api/v1/practitioners/{theirs}");
    assert_eq!(app.get(&path, &a.token).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        app.patch(&path, &a.token, json!({"lastName": "Stolen"}))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.delete(&path, &a.token).await.status,
        StatusCode::NOT_FOUND
    );
    let listed = app.get("/api/v1/practitioners", &a.token).await;
    assert_eq!(listed.body["pagination"]["total"], 0);
    assert_eq!(
        app.get(&path, &b.token).await.data()["lastName"],
        "Practitioner"
    );
    app.cleanup().await;
}

#[tokio::test]
async fn staff_other_than_admins_read_practitioners_but_cannot_change_them() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Roles").await;
    let id = app
        .post(
            "/api/v1/practitioners",
            &clinic.token,
            json!({"firstName": "Anne", "lastName": "Roux"}),
        )
        .await
        .id();
    let path = format!("/api/v1/practitioners/{id}");
    for role in ["doctor", "secretary", "readonly"] {
        let member = staff(&app, &clinic.token, role).await;
        assert_eq!(
            app.get("/api/v1/practitioners", &member.token).await.status,
            StatusCode::OK
        );
        assert_eq!(app.get(&path, &member.token).await.status, StatusCode::OK);
        for response in [
            app.post(
                "/api/v1/practitioners",
                &member.token,
                json!({"firstName": "A", "lastName": "B"}),
            )
            .await,
            app.patch(&path, &member.token, json!({"lastName": "C"}))
                .await,
            app.call(Method::PUT, &path, Some(&member.token), Some(json!({})))
                .await,
            app.delete(&path, &member.token).await,
        ] {
            assert_eq!(
                (response.status, response.code()),
                (StatusCode::FORBIDDEN, "forbidden"),
                "{role}"
            );
        }
    }
    assert_eq!(
        app.get(&path, &clinic.token).await.data()["lastName"],
        "Roux"
    );
    app.cleanup().await;
}
