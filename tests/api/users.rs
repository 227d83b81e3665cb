use axum::http::{Method, StatusCode};
use futures::future::join_all;
use serde_json::json;

use crate::helpers::{spawn_app, unique_email, TestApp, TestClinic};

/// A staff account made through `/users` and logged in.
pub struct Staff {
    pub id: String,
    pub email: String,
    pub password: String,
    pub token: String,
    pub refresh_token: String,
}

/// Creates an account of `role` in the admin's clinic and logs in as it.
pub async fn staff(app: &TestApp, admin_token: &str, role: &str) -> Staff {
    let email = unique_email();
    let password = "staff password 1".to_owned();
    let created = app
        .post(
            "/api/v1/users",
            admin_token,
            json!({"email": email, "password": password, "firstName": "Sam",
                   "lastName": format!("{role} account"), "role": role}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let login = app.login(&email, &password).await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    Staff {
        id: created.id(),
        email,
        password,
        token: login.data()["accessToken"].as_str().unwrap().to_owned(),
        refresh_token: login.data()["refreshToken"].as_str().unwrap().to_owned(),
    }
}

/// The admin's own account id.
async fn admin_id(app: &TestApp, clinic: &TestClinic) -> String {
    let me = app.get("/api/v1/auth/me", &clinic.token).await;
    me.data()["user"]["id"].as_str().unwrap().to_owned()
}

async fn refresh(app: &TestApp, token: &str) -> crate::helpers::TestResponse {
    app.call(
        Method::POST,
        "/api/v1/auth/refresh",
        None,
        Some(json!({"refreshToken": token})),
    )
    .await
}

#[tokio::test]
async fn an_admin_creates_reads_updates_and_deletes_staff() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Staff").await;
    let email = unique_email();
    let created = app
        .post(
            "/api/v1/users",
            &clinic.token,
            json!({"email": email, "password": "long enough", "firstName": " Jean ",
                   "lastName": "Bernard", "role": "doctor"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.id();
    assert_eq!(created.data()["firstName"], "Jean");
    assert_eq!(created.data()["role"], "doctor");
    assert_eq!(created.data()["isActive"], true);
    assert_eq!(created.data()["clinicId"], clinic.id.to_string());
    assert!(created.data().get("password").is_none());
    assert!(created.data().get("passwordHash").is_none());
    assert!(created.data()["createdAt"].is_string());
    // The account works at once, with its role.
    let login = app.login(&email.to_uppercase(), "long enough").await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    assert_eq!(login.data()["user"]["role"], "doctor");

    let list = app.get("/api/v1/users", &clinic.token).await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.body["pagination"]["total"], 2);
    for (search, expected) in [
        ("bernard", 1),
        ("Jean%20Bernard", 1),
        ("claire", 1),
        ("nobody", 0),
    ] {
        let found = app
            .get(&format!("/api/v1/users?search={search}"), &clinic.token)
            .await;
        assert_eq!(found.body["pagination"]["total"], expected, "{search}");
    }
    let by_email = app
        .get(
            &format!("/api/v1/users?search={}", &email[..6]),
            &clinic.token,
        )
        .await;
    assert_eq!(by_email.data()[0]["id"], id.as_str());
    let page = app
        .get("/api/v1/users?limit=1&offset=1", &clinic.token)
        .await;
    assert_eq!(page.data().as_array().unwrap().len(), 1);

    let path = format!("/api/v1/users/{id}");
    assert_eq!(app.get(&path, &clinic.token).await.data()["email"], email);
    let patched = app
        .patch(&path, &clinic.token, json!({"lastName": "Bernard-Lévy"}))
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    assert_eq!(patched.data()["lastName"], "Bernard-Lévy");
    assert_eq!(patched.data()["role"], "doctor");
    let put = app
        .call(
            Method::PUT,
            &path,
            Some(&clinic.token),
            Some(json!({"role": "secretary", "isActive": false})),
        )
        .await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.body);
    assert_eq!(put.data()["role"], "secretary");
    assert_eq!(put.data()["isActive"], false);
    assert_eq!(put.data()["lastName"], "Bernard-Lévy");
    // An empty change changes nothing and records nothing.
    let unchanged = app.patch(&path, &clinic.token, json!({})).await;
    assert_eq!(unchanged.data()["updatedAt"], put.data()["updatedAt"]);

    assert_eq!(
        app.delete(&path, &clinic.token).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.get(&path, &clinic.token).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.delete(&path, &clinic.token).await.status,
        StatusCode::NOT_FOUND
    );
    let list = app.get("/api/v1/users", &clinic.token).await;
    assert_eq!(list.body["pagination"]["total"], 1);

    // Each change is a platform event naming ids and fields, never the email.
    let events: Vec<(String, serde_json::Value)> = sqlx::query_as(
        "SELECT action, details FROM audit_logs WHERE action LIKE 'staff.%' AND company_id = $1
          ORDER BY id",
    )
    .bind(clinic.id)
    .fetch_all(&app.state.databases.central)
    .await
    .unwrap();
    let actions: Vec<&str> = events.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(
        actions,
        [
            "staff.created",
            "staff.updated",
            "staff.updated",
            "staff.deleted"
        ]
    );
    assert_eq!(events[1].1["fields"], json!(["lastName"]));
    assert_eq!(events[3].1["userId"], id.as_str());
    for (_, details) in &events {
        assert!(!details.to_string().contains(&email));
    }
    app.cleanup().await;
}

#[tokio::test]
async fn staff_requests_name_each_invalid_field() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Validation").await;
    let empty = app.post("/api/v1/users", &clinic.token, json!({})).await;
    assert_eq!(empty.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(empty.code(), "validation_failed");
    let fields = empty.detail_fields();
    for field in ["email", "password", "firstName", "lastName", "role"] {
        assert!(fields.contains(&field.to_owned()), "{field} in {fields:?}");
    }
    let bad = app
        .post(
            "/api/v1/users",
            &clinic.token,
            json!({"email": "nope", "password": "short", "firstName": "A", "lastName": "B",
                   "role": "super_admin"}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    let mut fields = bad.detail_fields();
    fields.sort();
    assert_eq!(fields, ["email", "password", "role"]);

    let doctor = staff(&app, &clinic.token, "doctor").await;
    let path = format!("/api/v1/users/{}", doctor.id);
    for (body, field) in [
        (json!({"role": "super_admin"}), "role"),
        (json!({"role": "owner"}), "role"),
        (json!({"firstName": ""}), "firstName"),
        (json!({"lastName": null}), "lastName"),
        (json!({"isActive": "no"}), "isActive"),
        (json!({"email": "new@example.fr"}), "email"),
    ] {
        let refused = app.patch(&path, &clinic.token, body.clone()).await;
        assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(
            refused.detail_fields().iter().any(|f| f.contains(field)),
            "{body}: {}",
            refused.body
        );
    }
    app.cleanup().await;
}

#[tokio::test]
async fn an_email_is_taken_platform_wide_whatever_its_case() {
    let app = spawn_app().await;
    let a = app.register_clinic("Alpha").await;
    let b = app.register_clinic("Beta").await;
    let body = |email: &str| {
        json!({"email": email, "password": "long enough", "firstName": "A", "lastName": "B",
               "role": "readonly"})
    };
    let taken = app
        .post("/api/v1/users", &a.token, body(&b.email.to_uppercase()))
        .await;
    assert_eq!(taken.status, StatusCode::CONFLICT);
    assert_eq!(taken.code(), "email_taken");
    let member = staff(&app, &a.token, "readonly").await;
    let again = app
        .post(
            "/api/v1/users",
            &b.token,
            body(&member.email.to_uppercase()),
        )
        .await;
    assert_eq!(again.code(), "email_taken");
    // A deleted account frees its email.
    app.delete(&format!("/api/v1/users/{}", member.id), &a.token)
        .await;
    let reused = app
        .post("/api/v1/users", &b.token, body(&member.email))
        .await;
    assert_eq!(reused.status, StatusCode::CREATED, "{}", reused.body);
    app.cleanup().await;
}

#[tokio::test]
async fn another_clinics_accounts_are_not_found() {
    let app = spawn_app().await;
    let a = app.register_clinic("Alpha").await;
    let b = app.register_clinic("Beta").await;
    let b_member = staff(&app, &b.token, "doctor").await;
    let b_admin = admin_id(&app, &b).await;
    for id in [&b_member.id, &b_admin] {
        let path = format!("/api/v1/users/{id}");
        assert_eq!(app.get(&path, &a.token).await.status, StatusCode::NOT_FOUND);
        assert_eq!(
            app.patch(&path, &a.token, json!({"isActive": false}))
                .await
                .status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            app.delete(&path, &a.token).await.status,
            StatusCode::NOT_FOUND
        );
    }
    let listed = app.get("/api/v1/users?search=account", &a.token).await;
    assert_eq!(listed.body["pagination"]["total"], 0);
    // B's accounts are untouched.
    let still = app
        .get(&format!("/api/v1/users/{}", b_member.id), &b.token)
        .await;
    assert_eq!(still.data()["isActive"], true);
    assert_eq!(
        app.get("/api/v1/patients", &b_member.token).await.status,
        StatusCode::OK
    );
    app.cleanup().await;
}

#[tokio::test]
async fn the_last_active_admin_cannot_be_demoted_deactivated_or_deleted() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Admins").await;
    let first = admin_id(&app, &clinic).await;
    let path = format!("/api/v1/users/{first}");
    for body in [
        json!({"role": "doctor"}),
        json!({"isActive": false}),
        json!({"role": "readonly", "isActive": false}),
    ] {
        let refused = app.patch(&path, &clinic.token, body.clone()).await;
        assert_eq!(refused.status, StatusCode::CONFLICT, "{body}");
        assert_eq!(refused.code(), "conflict");
    }
    let deleted = app.delete(&path, &clinic.token).await;
    assert_eq!(
        (deleted.status, deleted.code()),
        (StatusCode::CONFLICT, "conflict")
    );
    // Renaming the last admin is fine.
    assert_eq!(
        app.patch(
            &path,
            &clinic.token,
            json!({"firstName": "Still", "role": "admin"})
        )
        .await
        .status,
        StatusCode::OK
    );
    // An inactive admin does not count.
    let second = staff(&app, &clinic.token, "admin").await;
    let second_path = format!("/api/v1/users/{}", second.id);
    app.patch(&second_path, &clinic.token, json!({"isActive": false}))
        .await;
    assert_eq!(
        app.patch(&path, &clinic.token, json!({"role": "doctor"}))
            .await
            .status,
        StatusCode::CONFLICT
    );
    // With a second active admin, the first can step down; then the second
    // is the last one.
    app.patch(&second_path, &clinic.token, json!({"isActive": true}))
        .await;
    let second = app.login(&second.email, &second.password).await;
    let second_token = second.data()["accessToken"].as_str().unwrap().to_owned();
    let stepped_down = app
        .patch(&path, &clinic.token, json!({"role": "doctor"}))
        .await;
    assert_eq!(stepped_down.status, StatusCode::OK, "{}", stepped_down.body);
    let second_id = second.data()["user"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        app.delete(&format!("/api/v1/users/{second_id}"), &second_token)
            .await
            .status,
        StatusCode::CONFLICT
    );
    assert_eq!(
        app.delete(&path, &second_token).await.status,
        StatusCode::NO_CONTENT
    );
    app.cleanup().await;
}

#[tokio::test]
async fn two_admins_demoting_each_other_at_once_leave_one_admin() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Race").await;
    let first = admin_id(&app, &clinic).await;
    let second = staff(&app, &clinic.token, "admin").await;
    // Another session holds the clinic's admin rows until both changes are
    // waiting on them: the two really run side by side.
    let mut holder = app.state.databases.central.begin().await.unwrap();
    sqlx::query("SELECT id FROM users WHERE company_id = $1 FOR UPDATE")
        .bind(clinic.id)
        .execute(&mut *holder)
        .await
        .unwrap();
    let holder_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *holder)
        .await
        .unwrap();
    let release = async {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            // Waiting on the holder, or behind the other change in its queue.
            let waiting: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM pg_stat_activity
                  WHERE datname = current_database() AND wait_event_type = 'Lock'
                    AND pid <> $1",
            )
            .bind(holder_pid)
            .fetch_one(&app.state.databases.central)
            .await
            .unwrap();
            if waiting >= 2 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the two changes never waited together ({waiting} waiting)"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        holder.commit().await.unwrap();
    };
    let (second_path, first_path) = (
        format!("/api/v1/users/{}", second.id),
        format!("/api/v1/users/{first}"),
    );
    let changes = join_all([
        app.patch(&second_path, &clinic.token, json!({"role": "doctor"})),
        app.patch(&first_path, &second.token, json!({"role": "doctor"})),
    ]);
    let (answers, ()) = futures::join!(changes, release);
    let done = answers
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .count();
    assert_eq!(
        done,
        1,
        "{:?}",
        answers.iter().map(|r| &r.body).collect::<Vec<_>>()
    );
    let admins: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM users WHERE company_id = $1 AND role = 'admin' AND is_active
            AND deleted_at IS NULL",
    )
    .bind(clinic.id)
    .fetch_one(&app.state.databases.central)
    .await
    .unwrap();
    assert_eq!(admins, 1);
    app.cleanup().await;
}

#[tokio::test]
async fn a_deleted_or_deactivated_account_is_locked_out_at_once() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Lockout").await;
    let gone = staff(&app, &clinic.token, "doctor").await;
    let paused = staff(&app, &clinic.token, "secretary").await;
    for member in [&gone, &paused] {
        assert_eq!(
            app.get("/api/v1/patients", &member.token).await.status,
            StatusCode::OK
        );
    }
    assert_eq!(
        app.delete(&format!("/api/v1/users/{}", gone.id), &clinic.token)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.patch(
            &format!("/api/v1/users/{}", paused.id),
            &clinic.token,
            json!({"isActive": false}),
        )
        .await
        .status,
        StatusCode::OK
    );
    for member in [&gone, &paused] {
        let refreshed = refresh(&app, &member.refresh_token).await;
        assert_eq!(
            (refreshed.status, refreshed.code()),
            (StatusCode::UNAUTHORIZED, "unauthorized")
        );
        for path in ["/api/v1/patients", "/api/v1/auth/me", "/api/v1/clinic"] {
            let refused = app.get(path, &member.token).await;
            assert_eq!(
                (refused.status, refused.code()),
                (StatusCode::UNAUTHORIZED, "unauthorized"),
                "{path}"
            );
        }
        let login = app.login(&member.email, &member.password).await;
        assert_eq!(login.code(), "invalid_credentials");
    }
    let revoked: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM refresh_tokens WHERE user_id = ANY($1) AND revoked_at IS NULL",
    )
    .bind(vec![
        gone.id.parse::<uuid::Uuid>().unwrap(),
        paused.id.parse::<uuid::Uuid>().unwrap(),
    ])
    .fetch_one(&app.state.databases.central)
    .await
    .unwrap();
    assert_eq!(revoked, 0);
    // Reactivated, the account logs in again.
    app.patch(
        &format!("/api/v1/users/{}", paused.id),
        &clinic.token,
        json!({"isActive": true}),
    )
    .await;
    let back = app.login(&paused.email, &paused.password).await;
    assert_eq!(back.status, StatusCode::OK, "{}", back.body);
    // The admin was never affected.
    assert_eq!(
        app.get("/api/v1/patients", &clinic.token).await.status,
        StatusCode::OK
    );
    app.cleanup().await;
}

#[tokio::test]
async fn a_role_change_ends_old_tokens_and_a_refresh_carries_the_new_role() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Roles").await;
    let member = staff(&app, &clinic.token, "doctor").await;
    let patient = app.create_patient(&member.token, "Paul", "Valade").await;
    app.patch(
        &format!("/api/v1/users/{}", member.id),
        &clinic.token,
        json!({"role": "readonly"}),
    )
    .await;
    let old = app
        .patch(
            &format!("/api/v1/patients/{patient}"),
            &member.token,
            json!({"notes": "x"}),
        )
        .await;
    assert_eq!(old.status, StatusCode::UNAUTHORIZED);
    let refreshed = refresh(&app, &member.refresh_token).await;
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.body);
    let token = refreshed.data()["accessToken"].as_str().unwrap();
    let me = app.get("/api/v1/auth/me", token).await;
    assert_eq!(me.data()["user"]["role"], "readonly");
    assert_eq!(
        app.get("/api/v1/patients", token).await.status,
        StatusCode::OK
    );
    let write = app
        .patch(
            &format!("/api/v1/patients/{patient}"),
            token,
            json!({"notes": "x"}),
        )
        .await;
    assert_eq!(
        (write.status, write.code()),
        (StatusCode::FORBIDDEN, "forbidden")
    );
    app.cleanup().await;
}

#[tokio::test]
async fn only_admins_manage_staff() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Roles").await;
    let admin = admin_id(&app, &clinic).await;
    for role in ["doctor", "secretary", "readonly"] {
        let member = staff(&app, &clinic.token, role).await;
        let body = json!({"email": unique_email(), "password": "long enough",
                          "firstName": "A", "lastName": "B", "role": "admin"});
        for response in [
            app.get("/api/v1/users", &member.token).await,
            app.get(&format!("/api/v1/users/{admin}"), &member.token)
                .await,
            app.post("/api/v1/users", &member.token, body).await,
            app.patch(
                &format!("/api/v1/users/{}", member.id),
                &member.token,
                json!({"role": "admin"}),
            )
            .await,
            app.delete(&format!("/api/v1/users/{admin}"), &member.token)
                .await,
        ] {
            assert_eq!(
                (response.status, response.code()),
                (StatusCode::FORBIDDEN, "forbidden"),
                "{role}"
            );
        }
    }
    let users = app.get("/api/v1/users", &clinic.token).await;
    assert_eq!(users.body["pagination"]["total"], 4);
    app.cleanup().await;
}
