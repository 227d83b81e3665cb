//! Staff accounts as operators and users manage them: one-time setup and
//! reset links handed out by the real binary, a user's own password change,
//! unlocking, listing and deactivating accounts, and `doctor` naming the
//! clinics nobody can administer.

use std::io::Write;
use std::process::{Output, Stdio};

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{spawn_app, unique_email, TestApp, TestResponse};

/// Runs the binary with extra environment and `stdin`.
fn medicalpro(app: &TestApp, args: &[&str], env: &[(&str, &str)], stdin: &str) -> Output {
    let mut child = app
        .medicalpro_command()
        .envs(env.iter().copied())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running medicalpro");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// The command succeeded; its standard output as JSON.
fn json_of(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON on standard output")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn token_of(link: &str) -> String {
    link.split_once("/reset-password#token=")
        .expect("a reset-password link")
        .1
        .to_owned()
}

async fn use_link(app: &TestApp, token: &str, new_password: &str) -> TestResponse {
    app.call(
        Method::POST,
        "/api/v1/auth/password/reset",
        None,
        Some(json!({"token": token, "newPassword": new_password})),
    )
    .await
}

async fn refresh(app: &TestApp, refresh_token: &str) -> TestResponse {
    app.call(
        Method::POST,
        "/api/v1/auth/refresh",
        None,
        Some(json!({"refreshToken": refresh_token})),
    )
    .await
}

async fn count(app: &TestApp, sql: &str, bind: &str) -> i64 {
    sqlx::query_scalar(sql)
        .bind(bind)
        .fetch_one(&app.state.databases.central)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forgotten_password_is_reset_with_a_one_time_link() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Forgetful").await;
    for _ in 0..3 {
        let wrong = app.login(&clinic.email, "not the password").await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    }
    let env = [("PUBLIC_URL", "https://app.example.fr/")];
    let issued = json_of(&medicalpro(
        &app,
        &["user", "reset-password", &clinic.email, "--json"],
        &env,
        "",
    ));
    let link = issued["link"].as_str().unwrap();
    assert!(
        link.starts_with("https://app.example.fr/reset-password#token="),
        "{link}"
    );
    assert_eq!(issued["purpose"], "reset");
    let expires: chrono::DateTime<chrono::Utc> =
        issued["expiresAt"].as_str().unwrap().parse().unwrap();
    let hours = (expires - chrono::Utc::now()).num_minutes() as f64 / 60.0;
    assert!((23.5..=24.0).contains(&hours), "{hours} hours");
    let token = token_of(link);
    // Central keeps the token's SHA-256 only, and the audit never sees it.
    let stored: Vec<Vec<u8>> = sqlx::query_scalar("SELECT token_hash FROM password_links")
        .fetch_all(&app.state.databases.central)
        .await
        .unwrap();
    assert_eq!(stored, [medicalpro::crypto::sha256(token.as_bytes())]);

    let weak = use_link(&app, &token, "short").await;
    assert_eq!(weak.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(weak.detail_fields(), ["newPassword"]);
    let reset = use_link(&app, &token, "a brand new password").await;
    assert_eq!(reset.status, StatusCode::NO_CONTENT, "{}", reset.body);
    let failures = count(
        &app,
        "SELECT COUNT(*) FROM login_failures WHERE email = lower($1)",
        &clinic.email,
    )
    .await;
    assert_eq!(failures, 0, "the reset forgives the failed logins");

    let new = app.login(&clinic.email, "a brand new password").await;
    assert_eq!(new.status, StatusCode::OK, "{}", new.body);
    let old = app.login(&clinic.email, &clinic.password).await;
    assert_eq!(old.status, StatusCode::UNAUTHORIZED);
    assert_eq!(old.code(), "invalid_credentials");
    let stale = refresh(&app, &clinic.refresh_token).await;
    assert_eq!(stale.status, StatusCode::UNAUTHORIZED);
    let again = use_link(&app, &token, "yet another password").await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED);
    assert_eq!(again.code(), "unauthorized");
    let audited = count(
        &app,
        "SELECT COUNT(*) FROM audit_logs WHERE action = $1",
        "password.link_used",
    )
    .await;
    assert_eq!(audited, 1);
    let leaked = count(
        &app,
        "SELECT COUNT(*) FROM audit_logs WHERE details::text LIKE '%' || $1 || '%'",
        &token,
    )
    .await;
    assert_eq!(leaked, 0);

    // A newer link voids an older one; an expired link is refused.
    let first = token_of(
        json_of(&medicalpro(
            &app,
            &["user", "reset-password", &clinic.email, "--json"],
            &[],
            "",
        ))["link"]
            .as_str()
            .unwrap(),
    );
    let second = json_of(&medicalpro(
        &app,
        &["user", "reset-password", &clinic.email, "--json"],
        &[("PASSWORD_LINK_TTL_HOURS", "2")],
        "",
    ));
    assert!(second["link"]
        .as_str()
        .unwrap()
        .starts_with("http://localhost:8080/reset-password#token="));
    let voided = use_link(&app, &first, "a password never set").await;
    assert_eq!(voided.status, StatusCode::UNAUTHORIZED);
    sqlx::query("UPDATE password_links SET expires_at = now() - interval '1 second'")
        .execute(&app.state.databases.central)
        .await
        .unwrap();
    let expired = use_link(
        &app,
        &token_of(second["link"].as_str().unwrap()),
        "a password never set",
    )
    .await;
    assert_eq!(expired.status, StatusCode::UNAUTHORIZED);
    let still = app.login(&clinic.email, "a brand new password").await;
    assert_eq!(still.status, StatusCode::OK, "{}", still.body);

    let unknown = medicalpro(
        &app,
        &["user", "reset-password", "nobody@example.fr"],
        &[],
        "",
    );
    assert!(!unknown.status.success());
    assert!(
        stderr(&unknown).contains("no account"),
        "{}",
        stderr(&unknown)
    );
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clinic_create_with_an_admin_email_makes_an_admin_who_can_log_in() {
    let app = spawn_app().await;
    let admin = unique_email();
    let created = json_of(&medicalpro(
        &app,
        &[
            "clinic",
            "create",
            "--name",
            "Clinique du Lac",
            "--email",
            &unique_email(),
            "--admin-email",
            &admin,
            "--json",
        ],
        &[],
        "",
    ));
    let clinic: Uuid = created["id"].as_str().unwrap().parse().unwrap();
    let link = created["setupLink"].as_str().expect("a setup link");
    let before = app.login(&admin, "the admin's own password").await;
    assert_eq!(before.status, StatusCode::UNAUTHORIZED);
    let set = use_link(&app, &token_of(link), "the admin's own password").await;
    assert_eq!(set.status, StatusCode::NO_CONTENT, "{}", set.body);
    let login = app.login(&admin, "the admin's own password").await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    assert_eq!(login.data()["user"]["role"], "admin");
    assert_eq!(login.data()["clinic"]["id"], clinic.to_string());
    let token = login.data()["accessToken"].as_str().unwrap();
    let staff = app.get("/api/v1/users", token).await;
    assert_eq!(staff.status, StatusCode::OK, "{}", staff.body);

    // With a password on standard input, no link.
    let other = unique_email();
    let with_password = json_of(&medicalpro(
        &app,
        &[
            "clinic",
            "create",
            "--name",
            "Clinique des Pins",
            "--email",
            &unique_email(),
            "--admin-email",
            &other,
            "--admin-password-stdin",
            "--json",
        ],
        &[],
        "a password from stdin\n",
    ));
    assert!(with_password["setupLink"].is_null());
    let login = app.login(&other, "a password from stdin").await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);

    // Without an admin, doctor names the clinic; not the others.
    let bare = medicalpro(
        &app,
        &[
            "clinic",
            "create",
            "--name",
            "Nobody's",
            "--email",
            &unique_email(),
        ],
        &[],
        "",
    );
    assert!(bare.status.success(), "{}", stderr(&bare));
    assert!(
        stderr(&bare).contains("no admin account"),
        "{}",
        stderr(&bare)
    );
    let bare: Uuid = String::from_utf8_lossy(&bare.stdout)
        .trim()
        .parse()
        .unwrap();
    let report = medicalpro::ops::doctor::run(&app.settings, 2).await;
    let flagged: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.subject == "staff")
        .collect();
    assert_eq!(flagged.len(), 1, "{report:?}");
    assert_eq!(flagged[0].clinic_id, Some(bare));
    assert!(flagged[0].message.contains("no active admin"));
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_create_makes_a_staff_account_with_a_password_or_a_sent_link() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Hiring").await;
    let id = clinic.id.to_string();
    let doctor = unique_email();
    let created = json_of(&medicalpro(
        &app,
        &[
            "user",
            "create",
            "--clinic",
            &id,
            "--email",
            &doctor,
            "--role",
            "doctor",
            "--password-stdin",
            "--json",
        ],
        &[],
        "a doctor's password\n",
    ));
    assert_eq!(created["role"], "doctor");
    let login = app.login(&doctor, "a doctor's password").await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    assert_eq!(login.data()["clinic"]["id"], id);

    // Without a password: a setup link, handed to the hook too.
    let dir = std::env::temp_dir().join(format!("medicalpro-hook-{}", app.prefix));
    std::fs::create_dir_all(&dir).unwrap();
    let hook = dir.join("hook.sh");
    let sent = dir.join("sent");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\n{{ echo \"$MEDICALPRO_LINK_EMAIL $MEDICALPRO_LINK_PURPOSE\"; cat; }} > {}\n",
            sent.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o700)).unwrap();
    let secretary = unique_email();
    let with_link = medicalpro(
        &app,
        &[
            "user",
            "create",
            "--clinic",
            &id,
            "--email",
            &secretary,
            "--role",
            "secretary",
        ],
        &[("PASSWORD_RESET_HOOK", hook.to_str().unwrap())],
        "",
    );
    assert!(with_link.status.success(), "{}", stderr(&with_link));
    let stdout = String::from_utf8_lossy(&with_link.stdout).into_owned();
    let link = stdout.lines().nth(1).expect("the link on its own line");
    let received = std::fs::read_to_string(&sent).unwrap();
    assert_eq!(received, format!("{secretary} setup\n{link}\n"));
    let set = use_link(&app, &token_of(link), "a secretary's password").await;
    assert_eq!(set.status, StatusCode::NO_CONTENT, "{}", set.body);
    let login = app.login(&secretary, "a secretary's password").await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    assert_eq!(login.data()["user"]["role"], "secretary");

    // A failing hook: exit status 1, the link still printed.
    let failing = medicalpro(
        &app,
        &["user", "reset-password", &secretary],
        &[("PASSWORD_RESET_HOOK", "/bin/false")],
        "",
    );
    assert_eq!(failing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&failing.stdout).contains("/reset-password#token="));
    let _ = std::fs::remove_dir_all(&dir);

    let taken = medicalpro(
        &app,
        &[
            "user", "create", "--clinic", &id, "--email", &doctor, "--role", "readonly",
        ],
        &[],
        "",
    );
    assert!(!taken.status.success());
    assert!(
        stderr(&taken).contains("already exists"),
        "{}",
        stderr(&taken)
    );
    let nowhere = medicalpro(
        &app,
        &[
            "user",
            "create",
            "--clinic",
            &Uuid::new_v4().to_string(),
            "--email",
            &unique_email(),
            "--role",
            "admin",
        ],
        &[],
        "",
    );
    assert!(!nowhere.status.success());
    assert!(
        stderr(&nowhere).contains("no clinic"),
        "{}",
        stderr(&nowhere)
    );
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_changes_their_own_password_and_other_sessions_end() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Careful").await;
    let other_session = app.login(&clinic.email, &clinic.password).await;
    let other_refresh = other_session.data()["refreshToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let change = |current: &str, new: &str| {
        app.call(
            Method::POST,
            "/api/v1/auth/password",
            Some(&clinic.token),
            Some(json!({"currentPassword": current, "newPassword": new})),
        )
    };
    let anonymous = app
        .call(
            Method::POST,
            "/api/v1/auth/password",
            None,
            Some(json!({"currentPassword": "x", "newPassword": "long enough"})),
        )
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    let weak = change(&clinic.password, "short").await;
    assert_eq!(weak.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(weak.detail_fields(), ["newPassword"]);
    let wrong = change("not my password", "a changed password").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.code(), "invalid_credentials");
    let failures = count(
        &app,
        "SELECT COUNT(*) FROM login_failures WHERE email = lower($1)",
        &clinic.email,
    )
    .await;
    assert_eq!(failures, 1, "a wrong current password is a failed login");

    let changed = change(&clinic.password, "a changed password").await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    let fresh = changed.data()["refreshToken"].as_str().unwrap();
    for stale in [&clinic.refresh_token, &other_refresh] {
        let refused = refresh(&app, stale).await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    }
    let renewed = refresh(&app, fresh).await;
    assert_eq!(renewed.status, StatusCode::OK, "{}", renewed.body);
    let access = changed.data()["accessToken"].as_str().unwrap();
    assert_eq!(
        app.get("/api/v1/auth/me", access).await.status,
        StatusCode::OK
    );
    let old = app.login(&clinic.email, &clinic.password).await;
    assert_eq!(old.status, StatusCode::UNAUTHORIZED);
    let new = app.login(&clinic.email, "a changed password").await;
    assert_eq!(new.status, StatusCode::OK, "{}", new.body);
    // An admin never sets a colleague's (or their own) password by PATCH.
    let me = new.data()["user"]["id"].as_str().unwrap();
    let patched = app
        .patch(
            &format!("/api/v1/users/{me}"),
            new.data()["accessToken"].as_str().unwrap(),
            json!({"password": "set by someone else"}),
        )
        .await;
    assert_eq!(patched.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(patched.detail_fields(), ["password"]);

    // Wrong current passwords are throttled like logins.
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(change("still not it", "whatever it is").await.status);
    }
    assert_eq!(statuses[0], StatusCode::UNAUTHORIZED);
    assert_eq!(statuses[5], StatusCode::TOO_MANY_REQUESTS, "{statuses:?}");

    // The staff of a suspended clinic get no fresh tokens.
    let other = app.register_clinic("Suspended").await;
    let suspended = medicalpro(&app, &["clinic", "suspend", &other.id.to_string()], &[], "");
    assert!(suspended.status.success(), "{}", stderr(&suspended));
    let mut answer = None;
    for _ in 0..50 {
        let response = app
            .call(
                Method::POST,
                "/api/v1/auth/password",
                Some(&other.token),
                Some(json!({"currentPassword": other.password, "newPassword": "never applied"})),
            )
            .await;
        if response.status == StatusCode::FORBIDDEN {
            answer = Some(response);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        answer.expect("refused within 5 s").code(),
        "clinic_inactive"
    );
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlock_lets_a_throttled_account_log_in_at_once() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Locked out").await;
    for _ in 0..5 {
        app.login(&clinic.email, "a wrong guess").await;
    }
    let refused = app.login(&clinic.email, &clinic.password).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    let unlocked = json_of(&medicalpro(
        &app,
        &["user", "unlock", &clinic.email, "--json"],
        &[],
        "",
    ));
    assert_eq!(unlocked["failuresForgiven"], 5);
    let login = app.login(&clinic.email, &clinic.password).await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    let audited = count(
        &app,
        "SELECT COUNT(*) FROM audit_logs WHERE action = $1",
        "account.unlocked",
    )
    .await;
    assert_eq!(audited, 1);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn super_admins_are_listed_and_deactivated_but_never_the_last_one() {
    let app = spawn_app().await;
    let first = unique_email();
    let second = unique_email();
    for email in [&first, &second] {
        let made = medicalpro(
            &app,
            &["user", "create-super-admin", "--email", email],
            &[],
            "a platform password\n",
        );
        assert!(made.status.success(), "{}", stderr(&made));
    }
    let listed = json_of(&medicalpro(
        &app,
        &["user", "list", "--super-admins", "--json"],
        &[],
        "",
    ));
    let emails: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["email"].as_str().unwrap())
        .collect();
    assert_eq!(emails, [first.as_str(), second.as_str()]);

    let session = app.login(&first, "a platform password").await;
    assert_eq!(session.status, StatusCode::OK);
    let deactivated = medicalpro(&app, &["user", "deactivate", &first], &[], "");
    assert!(deactivated.status.success(), "{}", stderr(&deactivated));
    let login = app.login(&first, "a platform password").await;
    assert_eq!(login.status, StatusCode::UNAUTHORIZED);
    let refreshed = refresh(&app, session.data()["refreshToken"].as_str().unwrap()).await;
    assert_eq!(refreshed.status, StatusCode::UNAUTHORIZED);
    let listed = json_of(&medicalpro(
        &app,
        &["user", "list", "--super-admins", "--json"],
        &[],
        "",
    ));
    assert_eq!(listed[0]["isActive"], false);

    let last = medicalpro(&app, &["user", "deactivate", &second], &[], "");
    assert_eq!(last.status.code(), Some(1));
    assert!(
        stderr(&last).contains("last active super admin"),
        "{}",
        stderr(&last)
    );
    let login = app.login(&second, "a platform password").await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);

    let reactivated = medicalpro(&app, &["user", "activate", &first], &[], "");
    assert!(reactivated.status.success(), "{}", stderr(&reactivated));
    let login = app.login(&first, "a platform password").await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);

    // A clinic's last admin is refused too.
    let clinic = app.register_clinic("Single admin").await;
    let refused = medicalpro(&app, &["user", "deactivate", &clinic.email], &[], "");
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("last active admin"),
        "{}",
        stderr(&refused)
    );
    app.cleanup().await;
}
