//! Instances on one central database agree within 100 ms: a change of a
//! clinic or an account made on one (or from the command line) is noticed
//! by every other's listener, which drops what its caches hold; when the
//! listener's connection is lost, the caches' lifetime still applies and
//! the listener comes back.

use std::process::Output;
use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use medicalpro::central::notify::{self, Change};
use medicalpro::tenancy::naming::ClinicId;
use serde_json::json;

use crate::helpers::{spawn_app, TestApp};
use crate::users::staff;

/// What every instance must achieve.
const COHERENT_WITHIN: Duration = Duration::from_millis(100);

/// Polls `path` every 5 ms until it answers `status`: how long it took, or
/// `None` past `deadline`.
async fn answers(
    app: &TestApp,
    path: &str,
    token: &str,
    status: StatusCode,
    deadline: Duration,
) -> Option<Duration> {
    let started = Instant::now();
    loop {
        if app.get(path, token).await.status == status {
            return Some(started.elapsed());
        }
        if started.elapsed() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Polls `condition` every 5 ms: how long until it held, or `None` past `deadline`.
async fn until(deadline: Duration, condition: impl Fn() -> bool) -> Option<Duration> {
    let started = Instant::now();
    loop {
        if condition() {
            return Some(started.elapsed());
        }
        if started.elapsed() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn super_admin(app: &TestApp) -> String {
    let email = format!("root-{}@example.fr", app.prefix);
    medicalpro::platform::create_super_admin(
        &app.state.databases.central,
        &email,
        "platform password".into(),
    )
    .await
    .unwrap();
    app.login(&email, "platform password").await.data()["accessToken"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn listening(app: &TestApp) {
    let up = until(Duration::from_secs(5), || {
        app.state.coherence.is_listening()
    })
    .await;
    assert!(up.is_some(), "the change listener never connected");
}

/// Runs the binary without blocking the runtime, as a server's listener
/// keeps running while an operator types a command.
async fn medicalpro(app: &TestApp, args: &[&str]) -> Output {
    let mut command = app.medicalpro_command();
    command.args(args);
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

const PATIENTS: &str = "/api/v1/patients";

#[tokio::test]
async fn a_suspension_on_one_instance_is_seen_by_another_within_100_ms() {
    let app = spawn_app().await;
    let other = app.second_instance().await;
    listening(&other).await;
    let clinic = app.register_clinic("Coherent").await;
    let root = super_admin(&app).await;
    for instance in [&app, &other] {
        assert_eq!(
            instance.get(PATIENTS, &clinic.token).await.status,
            StatusCode::OK
        );
    }
    for (action, status) in [
        ("suspend", StatusCode::FORBIDDEN),
        ("activate", StatusCode::OK),
    ] {
        let done = app
            .call(
                Method::POST,
                &format!("/api/v1/admin/clinics/{}/{action}", clinic.id),
                Some(&root),
                None,
            )
            .await;
        assert_eq!(done.status, StatusCode::OK, "{}", done.body);
        let delay = answers(&other, PATIENTS, &clinic.token, status, COHERENT_WITHIN)
            .await
            .unwrap_or_else(|| panic!("the other instance missed `{action}` for 100 ms"));
        println!("{action} on one instance seen by the other after {delay:?}");
        assert!(delay < COHERENT_WITHIN, "{action}: {delay:?}");
    }
    other.close_instance().await;
    app.cleanup().await;
}

#[tokio::test]
async fn clinic_activate_from_the_command_line_is_served_at_once() {
    let app = spawn_app().await;
    listening(&app).await;
    let clinic = app.register_clinic("Command line").await;
    let id = clinic.id.to_string();
    assert_eq!(
        app.get(PATIENTS, &clinic.token).await.status,
        StatusCode::OK
    );
    medicalpro(&app, &["clinic", "suspend", &id]).await;
    let refused = app.get(PATIENTS, &clinic.token).await;
    assert_eq!(
        (refused.status, refused.code()),
        (StatusCode::FORBIDDEN, "clinic_inactive")
    );
    medicalpro(&app, &["clinic", "activate", &id]).await;
    let served = app.get(PATIENTS, &clinic.token).await;
    assert_eq!(served.status, StatusCode::OK, "{}", served.body);
    app.cleanup().await;
}

#[tokio::test]
async fn a_changed_account_is_refused_by_another_instance_within_100_ms() {
    let app = spawn_app().await;
    let other = app.second_instance().await;
    listening(&other).await;
    let clinic = app.register_clinic("Accounts").await;
    let deactivated = staff(&app, &clinic.token, "doctor").await;
    let demoted = staff(&app, &clinic.token, "doctor").await;
    for member in [&deactivated, &demoted] {
        assert_eq!(
            other.get(PATIENTS, &member.token).await.status,
            StatusCode::OK
        );
    }
    for (member, change) in [
        (&deactivated, json!({"isActive": false})),
        (&demoted, json!({"role": "readonly"})),
    ] {
        let done = app
            .patch(
                &format!("/api/v1/users/{}", member.id),
                &clinic.token,
                change.clone(),
            )
            .await;
        assert_eq!(done.status, StatusCode::OK, "{}", done.body);
        let delay = answers(
            &other,
            PATIENTS,
            &member.token,
            StatusCode::UNAUTHORIZED,
            COHERENT_WITHIN,
        )
        .await
        .unwrap_or_else(|| panic!("the other instance still takes the token after {change}"));
        println!("account change {change} seen by the other instance after {delay:?}");
        assert!(delay < COHERENT_WITHIN, "{change}: {delay:?}");
    }
    other.close_instance().await;
    app.cleanup().await;
}

#[tokio::test]
async fn a_placement_notice_closes_the_clinics_connections_on_every_instance() {
    let app = spawn_app().await;
    let other = app.second_instance().await;
    listening(&other).await;
    let clinic = app.register_clinic("Moved").await;
    assert_eq!(
        other.get(PATIENTS, &clinic.token).await.status,
        StatusCode::OK
    );
    assert_eq!(other.state.pools.open_clinics(), 1);
    notify::send(
        &app.state.databases.central,
        Change::Placement(ClinicId(clinic.id)),
    )
    .await
    .unwrap();
    let closed = until(COHERENT_WITHIN, || other.state.pools.open_clinics() == 0).await;
    println!("placement notice closed the other instance's clinic after {closed:?}");
    assert!(closed.is_some(), "the other instance kept the clinic open");
    // Opened again, from its placement read afresh.
    assert_eq!(
        other.get(PATIENTS, &clinic.token).await.status,
        StatusCode::OK
    );
    other.close_instance().await;
    app.cleanup().await;
}

/// A change central never announced (a notice missed) is still seen when
/// the cached entry expires; a listener whose connection is killed comes
/// back, clears the caches (the entry cached a moment before is gone long
/// before its lifetime) and hears the next change.
#[tokio::test]
async fn a_lost_listener_falls_back_on_the_cache_lifetime_and_comes_back() {
    let app = spawn_app().await;
    let other = app.second_instance().await;
    listening(&other).await;
    let clinic = app.register_clinic("Fallback").await;
    let root = super_admin(&app).await;
    let mut central = app.admin_connection(&app.central_database()).await;
    let set_active_unannounced = |active: bool| {
        sqlx::query("UPDATE companies SET is_active = $2 WHERE id = $1")
            .bind(clinic.id)
            .bind(active)
    };
    assert_eq!(
        other.get(PATIENTS, &clinic.token).await.status,
        StatusCode::OK
    );

    // No notice: the cache lifetime bounds the staleness.
    set_active_unannounced(false)
        .execute(&mut central)
        .await
        .unwrap();
    assert_eq!(
        other.get(PATIENTS, &clinic.token).await.status,
        StatusCode::OK,
        "served from the cache"
    );
    let ttl = medicalpro::tenancy::state::STATE_TTL;
    let expired = answers(
        &other,
        PATIENTS,
        &clinic.token,
        StatusCode::FORBIDDEN,
        ttl + Duration::from_millis(500),
    )
    .await;
    assert!(expired.is_some(), "still served after {ttl:?}");

    // A fresh entry (inactive), then the change behind its back and the
    // listener's connection killed.
    set_active_unannounced(true)
        .execute(&mut central)
        .await
        .unwrap();
    other.state.states.forget(ClinicId(clinic.id));
    let cached_at = Instant::now();
    assert_eq!(
        other.get(PATIENTS, &clinic.token).await.status,
        StatusCode::OK
    );
    set_active_unannounced(false)
        .execute(&mut central)
        .await
        .unwrap();
    assert_eq!(
        other.get(PATIENTS, &clinic.token).await.status,
        StatusCode::OK,
        "served from the cache"
    );
    let connections = other.state.coherence.connections();
    let killed: i64 = sqlx::query_scalar(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
          WHERE application_name = $1 AND datname = $2",
    )
    .bind(medicalpro::coherence::APPLICATION_NAME)
    .bind(app.central_database())
    .fetch_one(&mut central)
    .await
    .unwrap();
    assert_eq!(killed, 2, "one listener per instance");
    let back = until(Duration::from_secs(5), || {
        other.state.coherence.connections() > connections && other.state.coherence.is_listening()
    })
    .await
    .expect("the listener never came back");
    println!("listener back after {back:?}");
    let refused = other.get(PATIENTS, &clinic.token).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "caches not cleared");
    assert!(
        cached_at.elapsed() < ttl,
        "the entry may have expired on its own: {:?}",
        cached_at.elapsed()
    );

    // Listening again: the next change reaches it within 100 ms.
    let done = app
        .call(
            Method::POST,
            &format!("/api/v1/admin/clinics/{}/activate", clinic.id),
            Some(&root),
            None,
        )
        .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    let delay = answers(
        &other,
        PATIENTS,
        &clinic.token,
        StatusCode::OK,
        COHERENT_WITHIN,
    )
    .await;
    assert!(delay.is_some(), "the listener that came back hears nothing");
    drop(central);
    other.close_instance().await;
    app.cleanup().await;
}
