use axum::http::{Method, StatusCode};
use futures::future::join_all;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

use crate::helpers::{spawn_app, spawn_app_with, unique_email, TestResponse};

#[tokio::test]
async fn registration_makes_a_usable_clinic_and_admin() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Cabinet Pasteur").await;
    let me = app.get("/api/v1/auth/me", &clinic.token).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);
    assert_eq!(me.data()["user"]["role"], "admin");
    assert_eq!(me.data()["clinic"]["id"], clinic.id.to_string());
    assert_eq!(me.data()["clinic"]["name"], "Cabinet Pasteur");
    let patients = app.get("/api/v1/patients", &clinic.token).await;
    assert_eq!(patients.status, StatusCode::OK);
    app.cleanup().await;
}

#[tokio::test]
async fn registration_names_each_invalid_field() {
    let app = spawn_app().await;
    let response = app
        .register(json!({"clinicName": "", "email": "not-an-email", "password": "short", "country": "France"}))
        .await;
    assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(response.code(), "validation_failed");
    let fields = response.detail_fields();
    for field in [
        "clinicName",
        "email",
        "password",
        "firstName",
        "lastName",
        "country",
    ] {
        assert!(
            fields.contains(&field.to_owned()),
            "{field} missing from {fields:?}"
        );
    }
    app.cleanup().await;
}

#[tokio::test]
async fn an_email_registers_once_whatever_its_case() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("First").await;
    let again = app
        .register(
            json!({"clinicName": "Second", "email": clinic.email.to_uppercase(),
            "password": "password123", "firstName": "A", "lastName": "B"}),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.code(), "email_taken");
    app.cleanup().await;
}

#[tokio::test]
async fn racing_registrations_for_one_email_leave_one_clinic() {
    let app = spawn_app().await;
    let email = unique_email();
    let body = json!({"clinicName": "Race", "email": email, "password": "password123",
        "firstName": "A", "lastName": "B"});
    let responses = join_all((0..4).map(|_| app.register(body.clone()))).await;
    let created = responses
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .count();
    let conflicts = responses
        .iter()
        .filter(|r| r.code() == "email_taken")
        .count();
    assert_eq!((created, conflicts), (1, 3));
    let mut admin = app.admin_connection("postgres").await;
    let databases: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM pg_database WHERE datname LIKE $1")
            .bind(format!("{}\\_clinic\\_%", app.prefix))
            .fetch_one(&mut admin)
            .await
            .unwrap();
    assert_eq!(databases, 1);
    app.cleanup().await;
}

#[tokio::test]
async fn unknown_email_and_wrong_password_answer_identically() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Login").await;
    let ok = app
        .login(&clinic.email.to_uppercase(), &clinic.password)
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    assert!(ok.data()["accessToken"].is_string());
    assert_eq!(ok.data()["clinic"]["id"], clinic.id.to_string());
    let wrong_password = app.login(&clinic.email, "not the password").await;
    let unknown = app.login(&unique_email(), "not the password").await;
    assert_eq!(wrong_password.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong_password.code(), "invalid_credentials");
    assert_eq!(wrong_password.body, unknown.body);
    assert_eq!(wrong_password.status, unknown.status);
    app.cleanup().await;
}

/// Five failures for one email on one instance: another instance on the
/// same central refuses even the right password.
#[tokio::test]
async fn repeated_failures_throttle_the_account_on_every_instance() {
    let app = spawn_app().await;
    let other = app.second_instance().await;
    let clinic = app.register_clinic("Throttle").await;
    for _ in 0..5 {
        assert_eq!(
            app.login(&clinic.email, "wrong password").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    let blocked = other.login(&clinic.email, &clinic.password).await;
    assert_eq!(blocked.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(blocked.code(), "too_many_attempts");
    assert!(blocked.headers.contains_key("retry-after"));
    // Another account from another address is not concerned.
    let second = app.register_clinic("Unrelated").await;
    assert_eq!(
        other
            .login_from([10, 0, 0, 2], &second.email, &second.password)
            .await
            .status,
        StatusCode::OK
    );
    other.close_instance().await;
    app.cleanup().await;
}

/// A success forgives the account's failures; failures older than the
/// window no longer count.
#[tokio::test]
async fn a_success_clears_failures_and_the_window_ends() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Forgiven").await;
    let fail = |times: usize| {
        let app = &app;
        let email = clinic.email.clone();
        async move {
            for _ in 0..times {
                assert_eq!(
                    app.login(&email, "wrong password").await.status,
                    StatusCode::UNAUTHORIZED
                );
            }
        }
    };
    fail(4).await;
    assert_eq!(
        app.login(&clinic.email, &clinic.password).await.status,
        StatusCode::OK
    );
    fail(4).await;
    // Eight failures in all, four since the success: not throttled.
    assert_eq!(
        app.login(&clinic.email, &clinic.password).await.status,
        StatusCode::OK
    );
    fail(5).await;
    assert_eq!(
        app.login(&clinic.email, &clinic.password).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    // The window passes (the failures are moved back past it).
    sqlx::query("UPDATE login_failures SET failed_at = failed_at - make_interval(mins => $1)")
        .bind(medicalpro::central::login_failures::WINDOW_MINUTES + 1)
        .execute(&app.state.databases.central)
        .await
        .unwrap();
    assert_eq!(
        app.login(&clinic.email, &clinic.password).await.status,
        StatusCode::OK
    );
    app.cleanup().await;
}

fn retry_after(response: &TestResponse) -> u64 {
    response.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// Once the account's limit is reached, the right password is refused with
/// a `Retry-After` that is the real time left, as central's failure
/// timestamps and the window give it (rounded up to a second), and a login
/// after that time succeeds.
#[tokio::test]
async fn a_locked_account_is_told_the_real_time_left_and_is_let_in_after_it() {
    let window = std::time::Duration::from_secs(4);
    let app = spawn_app_with(|settings| settings.serving.login.window = window).await;
    let limits = app.state.login_limits;
    let clinic = app.register_clinic("Honest lock").await;
    for _ in 0..limits.per_account {
        assert_eq!(
            app.login(&clinic.email, "wrong password").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    let blocked = app.login(&clinic.email, &clinic.password).await;
    let answered = std::time::Instant::now();
    assert_eq!(
        blocked.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        blocked.body
    );
    assert_eq!(blocked.code(), "too_many_attempts");
    let wait = retry_after(&blocked);
    // The place that frees first: the oldest of the counted attempts.
    let remaining: f64 = sqlx::query_scalar(
        "SELECT EXTRACT(EPOCH FROM failed_at + make_interval(secs => $2) - clock_timestamp())::float8
           FROM login_failures WHERE email = lower($1)
          ORDER BY failed_at DESC OFFSET $3 - 1 LIMIT 1",
    )
    .bind(&clinic.email)
    .bind(window.as_secs_f64())
    .bind(limits.per_account)
    .fetch_one(&app.state.databases.central)
    .await
    .unwrap();
    assert!(
        (wait as f64 - remaining).abs() <= 1.0,
        "Retry-After {wait}, real remaining {remaining:.3} s"
    );
    assert!((1..=window.as_secs()).contains(&wait), "Retry-After {wait}");
    tokio::time::sleep(std::time::Duration::from_secs(wait).saturating_sub(answered.elapsed()))
        .await;
    let back = app.login(&clinic.email, &clinic.password).await;
    assert_eq!(back.status, StatusCode::OK, "{}", back.body);
    app.cleanup().await;
}

/// Twenty failures from one address, each for another email: that
/// address is refused for every account, another address is not.
#[tokio::test]
async fn twenty_failures_from_one_address_throttle_it_for_every_account() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Address").await;
    let noisy = [192, 0, 2, 7];
    for _ in 0..medicalpro::central::login_failures::MAX_PER_ADDRESS {
        assert_eq!(
            app.login_from(noisy, &unique_email(), "guess").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    let blocked = app.login_from(noisy, &clinic.email, &clinic.password).await;
    assert_eq!(blocked.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(blocked.code(), "too_many_attempts");
    assert_eq!(
        app.login_from([192, 0, 2, 8], &clinic.email, &clinic.password)
            .await
            .status,
        StatusCode::OK
    );
    app.cleanup().await;
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_family() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Refresh").await;
    let refresh = |token: &str| {
        app.call(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(json!({"refreshToken": token})),
        )
    };
    let first = refresh(&clinic.refresh_token).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    let second_token = first.data()["refreshToken"].as_str().unwrap().to_owned();
    assert_ne!(second_token, clinic.refresh_token);
    let me = app
        .get(
            "/api/v1/auth/me",
            first.data()["accessToken"].as_str().unwrap(),
        )
        .await;
    assert_eq!(me.status, StatusCode::OK);
    // The rotated token presented again: refused, and the family revoked.
    let reuse = refresh(&clinic.refresh_token).await;
    assert_eq!(reuse.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        refresh(&second_token).await.status,
        StatusCode::UNAUTHORIZED
    );
    app.cleanup().await;
}

/// Logout ends the whole login: a token rotated from the one presented
/// is refused too.
#[tokio::test]
async fn logout_ends_the_whole_refresh_family() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Logout").await;
    let post = |path: &'static str, token: String| {
        app.call(
            Method::POST,
            path,
            None,
            Some(json!({"refreshToken": token})),
        )
    };
    let rotated = post("/api/v1/auth/refresh", clinic.refresh_token.clone()).await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.body);
    let r2 = rotated.data()["refreshToken"].as_str().unwrap().to_owned();
    // Logging out with the first token of the family.
    let out = post("/api/v1/auth/logout", clinic.refresh_token.clone()).await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    let refresh = post("/api/v1/auth/refresh", r2).await;
    assert_eq!(refresh.status, StatusCode::UNAUTHORIZED);
    assert_eq!(refresh.code(), "unauthorized");
    // Another login of the same account is another family: untouched.
    let again = app.login(&clinic.email, &clinic.password).await;
    let r3 = again.data()["refreshToken"].as_str().unwrap().to_owned();
    assert_eq!(
        post("/api/v1/auth/refresh", r3).await.status,
        StatusCode::OK
    );
    app.cleanup().await;
}

#[tokio::test]
async fn bad_tokens_are_refused_before_any_clinic_database() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Tokens").await;
    let me = app.get("/api/v1/auth/me", &clinic.token).await;
    let user_id = me.data()["user"]["id"].as_str().unwrap().to_owned();
    let now = chrono::Utc::now().timestamp();
    let claims = |iat: i64, exp: i64| {
        json!({"sub": user_id, "userId": user_id, "clinicId": clinic.id, "email": clinic.email,
               "role": "admin", "iss": "medicalpro", "aud": "medicalpro-api",
               "iat": iat, "exp": exp})
    };
    let secret = app.settings.jwt_secret.as_bytes();
    let sign = |claims: serde_json::Value, key: &[u8], alg: Algorithm| {
        jsonwebtoken::encode(&Header::new(alg), &claims, &EncodingKey::from_secret(key)).unwrap()
    };
    // Control: a token we forge with the right key and claims is accepted.
    let good = sign(claims(now, now + 60), secret, Algorithm::HS256);
    assert_eq!(
        app.get("/api/v1/patients", &good).await.status,
        StatusCode::OK
    );

    let expired = sign(claims(now - 3600, now - 1), secret, Algorithm::HS256);
    let other_key = sign(
        claims(now, now + 60),
        b"another key entirely, long enough!!",
        Algorithm::HS256,
    );
    let hs512 = sign(claims(now, now + 60), secret, Algorithm::HS512);
    let unsigned = {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!(
            "{}.{}.",
            b64.encode(br#"{"alg":"none","typ":"JWT"}"#),
            b64.encode(claims(now, now + 60).to_string())
        )
    };
    let mut wrong_clinic = claims(now, now + 60);
    wrong_clinic["sub"] = json!(uuid::Uuid::new_v4());
    let mismatched = sign(wrong_clinic, secret, Algorithm::HS256);
    // Right key, right everything else, but another issuer or audience, or none.
    let with = |claim: &str, value: Option<&str>| {
        let mut forged = claims(now, now + 60);
        match value {
            Some(value) => forged[claim] = json!(value),
            None => {
                forged.as_object_mut().unwrap().remove(claim);
            }
        }
        sign(forged, secret, Algorithm::HS256)
    };
    let wrong_issuer = with("iss", Some("someone-else"));
    let no_issuer = with("iss", None);
    let wrong_audience = with("aud", Some("medicalpro-admin"));
    let no_audience = with("aud", None);
    for token in [
        expired,
        other_key,
        hs512,
        unsigned,
        mismatched,
        wrong_issuer,
        no_issuer,
        wrong_audience,
        no_audience,
        "garbage".to_owned(),
    ] {
        let response = app.get("/api/v1/patients", &token).await;
        assert_eq!(response.status, StatusCode::UNAUTHORIZED, "{token}");
        assert_eq!(response.code(), "unauthorized");
    }
    let none = app.call(Method::GET, "/api/v1/patients", None, None).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    app.cleanup().await;
}

/// The family of a refresh token, read from central.
async fn family_of(central: &mut sqlx::PgConnection, token: &str) -> uuid::Uuid {
    sqlx::query_scalar("SELECT family_id FROM refresh_tokens WHERE token_hash = $1")
        .bind(medicalpro::crypto::sha256(token.as_bytes()))
        .fetch_one(central)
        .await
        .expect("the token is stored")
}

/// Moves every timestamp of a family `days` into the past.
async fn age_family(central: &mut sqlx::PgConnection, family: uuid::Uuid, days: i32) {
    sqlx::query(
        "UPDATE refresh_tokens SET created_at = created_at - make_interval(days => $2)
          WHERE family_id = $1",
    )
    .bind(family)
    .bind(days)
    .execute(central)
    .await
    .unwrap();
}

#[tokio::test]
async fn a_refresh_family_stops_refreshing_past_its_absolute_lifetime() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Family age").await;
    let mut central = app.admin_connection(&app.central_database()).await;
    let refresh = |token: String| {
        app.call(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(json!({"refreshToken": token})),
        )
    };
    // Rotated once, so that the family's newest token is fresh.
    let rotated = refresh(clinic.refresh_token.clone()).await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.body);
    let current = rotated.data()["refreshToken"].as_str().unwrap().to_owned();
    let family = family_of(&mut central, &current).await;
    // 29 days into the default 30: still refreshes.
    age_family(&mut central, family, 29).await;
    let within = refresh(current).await;
    assert_eq!(within.status, StatusCode::OK, "{}", within.body);
    let current = within.data()["refreshToken"].as_str().unwrap().to_owned();
    // Two days more: past 30 days since the login, refused.
    age_family(&mut central, family, 2).await;
    let past = refresh(current).await;
    assert_eq!(past.status, StatusCode::UNAUTHORIZED, "{}", past.body);
    assert_eq!(past.code(), "unauthorized");
    // A new login is a new family, which refreshes.
    let login = app.login(&clinic.email, &clinic.password).await;
    let fresh = login.data()["refreshToken"].as_str().unwrap().to_owned();
    assert_eq!(refresh(fresh).await.status, StatusCode::OK);
    app.cleanup().await;
}

#[tokio::test]
async fn expired_refresh_families_and_old_login_failures_are_purged() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Purge").await;
    let mut central = app.admin_connection(&app.central_database()).await;
    let old_family = family_of(&mut central, &clinic.refresh_token).await;
    age_family(&mut central, old_family, 31).await;
    let login = app.login(&clinic.email, &clinic.password).await;
    let expiring = login.data()["refreshToken"].as_str().unwrap().to_owned();
    let expired_family = family_of(&mut central, &expiring).await;
    sqlx::query(
        "UPDATE refresh_tokens SET expires_at = now() - interval '1 second' WHERE family_id = $1",
    )
    .bind(expired_family)
    .execute(&mut central)
    .await
    .unwrap();
    let login = app.login(&clinic.email, &clinic.password).await;
    let live = login.data()["refreshToken"].as_str().unwrap().to_owned();
    let live_family = family_of(&mut central, &live).await;
    sqlx::query(
        "INSERT INTO login_failures (email, client_addr, failed_at)
         VALUES ('old@example.org', '10.0.0.1', now() - interval '16 minutes'),
                ('recent@example.org', '10.0.0.1', now() - interval '14 minutes')",
    )
    .execute(&mut central)
    .await
    .unwrap();

    sqlx::query(
        "INSERT INTO registration_attempts (client_addr, attempted_at)
         VALUES ('10.0.0.1', now() - interval '61 minutes'), ('10.0.0.1', now() - interval '59 minutes')",
    )
    .execute(&mut central)
    .await
    .unwrap();
    let purged =
        medicalpro::central::purge_expired(&app.state.databases.central, 30, &Default::default())
            .await
            .unwrap();
    assert_eq!(purged, (2, 1, 1));
    let families: Vec<uuid::Uuid> =
        sqlx::query_scalar("SELECT DISTINCT family_id FROM refresh_tokens")
            .fetch_all(&mut central)
            .await
            .unwrap();
    assert_eq!(families, vec![live_family]);
    let emails: Vec<String> = sqlx::query_scalar("SELECT email FROM login_failures")
        .fetch_all(&mut central)
        .await
        .unwrap();
    assert_eq!(emails, vec!["recent@example.org"]);
    app.cleanup().await;
}
