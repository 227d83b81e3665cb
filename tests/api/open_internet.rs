//! Attacks an open-internet deployment must withstand: a flood of logins
//! cannot exhaust memory or starve the server, and concurrent guesses at
//! one password, on several instances at once, get no more checks than the
//! throttle allows.

use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use futures::future::join_all;
use medicalpro::auth::password::default_max_concurrent;
use medicalpro::central::login_failures::{MAX_PER_EMAIL, WINDOW_MINUTES};

use crate::helpers::{spawn_app, unique_email, TestResponse};

/// Peak memory growth the login flood may cause: each hashing slot holds
/// about 19 MiB; the rest is headroom for the allocator and the requests
/// themselves. Unbounded, 300 hashes in flight would take some 5.7 GiB.
fn rss_budget_kib() -> u64 {
    (default_max_concurrent() as u64 * 19 + 160) * 1024
}

/// A field of `/proc/self/status`, in KiB.
fn proc_status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/self/status"))
}

fn retry_after(response: &TestResponse) -> Option<u64> {
    response
        .headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// 300 logins at once, right and wrong passwords and unknown emails, each
/// from its own address: the hashes in flight are bounded, so the process's
/// peak memory grows by less than [`rss_budget_kib`], `/health` answers
/// within a second meanwhile, and a login the server could not take in
/// time gets 503 `server_busy` with `Retry-After`, never a 500.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_flood_cannot_exhaust_memory_or_starve_health() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Flood").await;
    // Resets VmHWM to the current RSS (Linux `clear_refs`), so the peak
    // read afterwards is this flood's.
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
    let before = proc_status_kib("VmRSS:");
    let logins = (0..300u32).map(|i| {
        let app = &app;
        let clinic = &clinic;
        async move {
            let from = [10, 9, (i / 250) as u8, (i % 250) as u8 + 1];
            match i % 10 {
                0 => app.login_from(from, &clinic.email, &clinic.password).await,
                1 => app.login_from(from, &clinic.email, "wrong horse").await,
                _ => app.login_from(from, &unique_email(), "a guess").await,
            }
        }
    });
    let health = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let started = Instant::now();
        let answer = app.call(Method::GET, "/health", None, None).await;
        (answer.status, started.elapsed())
    };
    let (answers, (health_status, health_took)) = tokio::join!(join_all(logins), health);
    let peak = proc_status_kib("VmHWM:");
    let growth = peak.saturating_sub(before);
    println!(
        "RSS before {before} KiB, peak {peak} KiB, growth {growth} KiB (budget {} KiB)",
        rss_budget_kib()
    );
    assert_eq!(health_status, StatusCode::OK);
    assert!(
        health_took < Duration::from_secs(1),
        "/health took {health_took:?}"
    );
    let mut counts = std::collections::BTreeMap::new();
    for answer in &answers {
        *counts.entry(answer.status.as_u16()).or_insert(0) += 1;
        match answer.status {
            StatusCode::OK | StatusCode::UNAUTHORIZED => {}
            StatusCode::TOO_MANY_REQUESTS => assert_eq!(answer.code(), "too_many_attempts"),
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(answer.code(), "server_busy", "{}", answer.body);
                assert_eq!(retry_after(answer), Some(1));
            }
            other => panic!("{other}: {}", answer.body),
        }
    }
    println!("answers by status: {counts:?}");
    assert!(
        counts.get(&401).copied().unwrap_or(0) > 0 && counts.get(&200).copied().unwrap_or(0) > 0,
        "{counts:?}"
    );
    assert!(
        growth < rss_budget_kib(),
        "peak RSS grew by {growth} KiB, budget {} KiB",
        rss_budget_kib()
    );
    app.cleanup().await;
}

/// 200 wrong passwords for one account at once, half on each of two
/// instances, each from its own address: only the allowed number get their
/// password checked (401), the rest are refused (429) with a `Retry-After`
/// that says when the oldest counted attempt leaves the window. Once it
/// has, the right password works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_guesses_across_instances_get_only_the_allowed_checks() {
    let app = spawn_app().await;
    let other = app.second_instance().await;
    let clinic = app.register_clinic("Guessed").await;
    let guesses = (0..200u32).map(|i| {
        let instance = if i % 2 == 0 { &app } else { &other };
        let email = &clinic.email;
        async move {
            let from = [10, 8, (i / 250) as u8, (i % 250) as u8 + 1];
            instance
                .login_from(from, email, &format!("guess {i}"))
                .await
        }
    });
    let answers = join_all(guesses).await;
    let window = u64::from(WINDOW_MINUTES as u32) * 60;
    let (mut checked, mut refused) = (0, 0);
    for answer in &answers {
        match answer.status {
            StatusCode::UNAUTHORIZED => checked += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                refused += 1;
                assert_eq!(answer.code(), "too_many_attempts");
                let wait = retry_after(answer).expect("Retry-After");
                assert!((window - 60..=window).contains(&wait), "Retry-After {wait}");
            }
            other => panic!("{other}: {}", answer.body),
        }
    }
    assert_eq!(
        (checked, refused),
        (MAX_PER_EMAIL, 200 - MAX_PER_EMAIL),
        "passwords checked, refused"
    );
    // Ten minutes on, the refusal says five are left, not a fixed delay.
    let central = &app.state.databases.central;
    sqlx::query("UPDATE login_failures SET failed_at = failed_at - interval '10 minutes'")
        .execute(central)
        .await
        .unwrap();
    let still = other.login(&clinic.email, &clinic.password).await;
    assert_eq!(still.status, StatusCode::TOO_MANY_REQUESTS);
    let wait = retry_after(&still).expect("Retry-After");
    assert!((window - 600 - 60..=window - 600).contains(&wait), "{wait}");
    // The window passes: the right password works, on either instance.
    sqlx::query("UPDATE login_failures SET failed_at = failed_at - make_interval(mins => $1)")
        .bind(WINDOW_MINUTES)
        .execute(central)
        .await
        .unwrap();
    let back = other.login(&clinic.email, &clinic.password).await;
    assert_eq!(back.status, StatusCode::OK, "{}", back.body);
    other.close_instance().await;
    app.cleanup().await;
}
