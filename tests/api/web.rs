//! The staff web app at `/`, and the cookie mode of its sessions: the
//! refresh token in an `HttpOnly` cookie no page script can read, refreshed
//! only from this site's own pages, ended on the server at logout.

use axum::http::{header, Method, StatusCode};
use serde_json::json;

use crate::helpers::{spawn_app, TestApp, TestResponse};

const WEB: (&str, &[u8]) = ("x-medicalpro-client", b"web");
const CSRF: (&str, &[u8]) = ("x-medicalpro-csrf", b"1");
const HOST: (&str, &[u8]) = ("host", b"clinic.example");

fn set_cookie(response: &TestResponse) -> String {
    let cookies: Vec<_> = response
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert_eq!(cookies.len(), 1, "{cookies:?}");
    cookies[0].clone()
}

/// The refresh token a `Set-Cookie` sets, after checking its flags.
fn refresh_cookie(response: &TestResponse) -> String {
    let cookie = set_cookie(response);
    let attributes: Vec<&str> = cookie.split("; ").collect();
    for flag in [
        "HttpOnly",
        "Secure",
        "SameSite=Strict",
        "Path=/api/v1/auth/refresh",
    ] {
        assert!(attributes.contains(&flag), "{flag} missing from {cookie}");
    }
    let value = attributes[0]
        .strip_prefix("medicalpro_refresh=")
        .unwrap_or_else(|| panic!("{cookie}"));
    assert!(value.len() >= 32, "{cookie}");
    value.to_owned()
}

async fn web_refresh(app: &TestApp, token: &str, extra: &[(&str, &[u8])]) -> TestResponse {
    let cookie = format!("other=1; medicalpro_refresh={token}");
    let mut headers = vec![WEB, HOST, ("cookie", cookie.as_bytes())];
    headers.extend_from_slice(extra);
    app.call_from(
        [127, 0, 0, 1],
        &headers,
        Method::POST,
        "/api/v1/auth/refresh",
        None,
        None,
    )
    .await
}

#[tokio::test]
async fn web_logins_keep_the_refresh_token_in_an_http_only_cookie() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Cookie").await;
    let body = json!({"email": clinic.email, "password": clinic.password});

    let web = app
        .call_from(
            [127, 0, 0, 1],
            &[WEB],
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(body.clone()),
        )
        .await;
    assert_eq!(web.status, StatusCode::OK, "{}", web.body);
    refresh_cookie(&web);
    assert!(web.data().get("refreshToken").is_none(), "{}", web.body);
    assert!(web.data()["accessToken"].is_string());
    assert_eq!(web.headers[header::CACHE_CONTROL], "no-store");

    // Other clients are unchanged: tokens in the body, no cookie.
    let api = app.login(&clinic.email, &clinic.password).await;
    assert!(api.data()["refreshToken"].is_string());
    assert!(api.headers.get(header::SET_COOKIE).is_none());
    assert_eq!(api.headers[header::CACHE_CONTROL], "no-store");
    let refused = app.get("/api/v1/patients", "not a token").await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(refused.headers[header::CACHE_CONTROL], "no-store");

    // Registration too.
    let registered = app
        .call_from(
            [127, 0, 0, 2],
            &[WEB],
            Method::POST,
            "/api/v1/auth/register",
            None,
            Some(
                json!({"clinicName": "Web", "email": format!("web-{}@example.fr", app.prefix),
                "password": "correct horse battery", "firstName": "A", "lastName": "B"}),
            ),
        )
        .await;
    assert_eq!(
        registered.status,
        StatusCode::CREATED,
        "{}",
        registered.body
    );
    refresh_cookie(&registered);
    assert!(registered.data().get("refreshToken").is_none());
    app.cleanup().await;
}

#[tokio::test]
async fn a_cookie_refresh_without_the_csrf_header_or_from_another_site_is_refused() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Csrf").await;
    let login = app
        .call_from(
            [127, 0, 0, 1],
            &[WEB],
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"email": clinic.email, "password": clinic.password})),
        )
        .await;
    let token = refresh_cookie(&login);

    let refusals: [&[(&str, &[u8])]; 4] = [
        &[],
        &[CSRF, ("origin", b"https://evil.example")],
        &[CSRF, ("sec-fetch-site", b"cross-site")],
        &[
            ("x-medicalpro-csrf", b"0"),
            ("sec-fetch-site", b"same-origin"),
        ],
    ];
    for extra in refusals {
        let refused = web_refresh(&app, &token, extra).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{extra:?}");
        assert_eq!(refused.code(), "forbidden");
        assert!(refused.headers.get(header::SET_COOKIE).is_none());
    }

    // From the site's own page: a new cookie, and the old one is spent.
    let same_site = [
        CSRF,
        ("origin", b"https://clinic.example".as_slice()),
        ("sec-fetch-site", b"same-origin".as_slice()),
    ];
    let refreshed = web_refresh(&app, &token, &same_site).await;
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.body);
    let next = refresh_cookie(&refreshed);
    assert_ne!(next, token);
    assert!(refreshed.data().get("refreshToken").is_none());
    let me = app
        .get(
            "/api/v1/auth/me",
            refreshed.data()["accessToken"].as_str().unwrap(),
        )
        .await;
    assert_eq!(me.status, StatusCode::OK);

    // A refused cookie is cleared; reusing a rotated one ends the family.
    let reused = web_refresh(&app, &token, &same_site).await;
    assert_eq!(reused.status, StatusCode::UNAUTHORIZED);
    assert!(set_cookie(&reused).contains("Max-Age=0"));
    let after_reuse = web_refresh(&app, &next, &same_site).await;
    assert_eq!(after_reuse.status, StatusCode::UNAUTHORIZED);

    // No cookie at all.
    let none = app
        .call_from(
            [127, 0, 0, 1],
            &[WEB, CSRF],
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            None,
        )
        .await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    app.cleanup().await;
}

#[tokio::test]
async fn web_logout_revokes_the_family_and_clears_the_cookie() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Logout").await;
    let login = app
        .call_from(
            [127, 0, 0, 1],
            &[WEB],
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"email": clinic.email, "password": clinic.password})),
        )
        .await;
    let token = refresh_cookie(&login);
    let cookie = format!("medicalpro_refresh={token}");

    let cross_site = app
        .call_from(
            [127, 0, 0, 1],
            &[
                ("cookie", cookie.as_bytes()),
                CSRF,
                ("sec-fetch-site", b"cross-site"),
            ],
            Method::DELETE,
            "/api/v1/auth/refresh",
            None,
            None,
        )
        .await;
    assert_eq!(cross_site.status, StatusCode::FORBIDDEN);

    let logout = app
        .call_from(
            [127, 0, 0, 1],
            &[
                ("cookie", cookie.as_bytes()),
                CSRF,
                HOST,
                ("origin", b"http://clinic.example"),
            ],
            Method::DELETE,
            "/api/v1/auth/refresh",
            None,
            None,
        )
        .await;
    assert_eq!(logout.status, StatusCode::NO_CONTENT);
    let cleared = set_cookie(&logout);
    assert!(cleared.starts_with("medicalpro_refresh=;"), "{cleared}");
    assert!(cleared.contains("Max-Age=0") && cleared.contains("Path=/api/v1/auth/refresh"));

    let after = web_refresh(&app, &token, &[CSRF]).await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);
    app.cleanup().await;
}

/// `/` and every file it loads come from the binary, under a policy that
/// allows this origin only, no inline script or style, and no framing.
#[tokio::test]
async fn the_app_is_served_by_the_binary_under_a_strict_policy() {
    let app = spawn_app().await;
    let page = app.call(Method::GET, "/", None, None).await;
    assert_eq!(page.status, StatusCode::OK);
    let policy = page.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap();
    for directive in [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "frame-ancestors 'none'",
        "object-src 'none'",
    ] {
        assert!(policy.contains(directive), "{directive}");
    }
    assert!(!policy.contains("unsafe"));
    let html = page.body.as_str().unwrap();
    assert!(!html.contains("<script>") && !html.contains("style="));
    assert!(!html.contains("http://") && !html.contains("https://"));
    for (name, _) in medicalpro::http::web::ASSETS {
        let asset = app
            .call(Method::GET, &format!("/app/{name}"), None, None)
            .await;
        assert_eq!(asset.status, StatusCode::OK, "{name}");
        assert_eq!(asset.headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert!(
            asset.headers[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap()
                == policy
        );
        if name.ends_with(".svg") {
            continue;
        }
        let text = asset.body.as_str().map(str::to_owned).unwrap_or_default();
        for forbidden in [
            "localStorage",
            "sessionStorage",
            "innerHTML",
            "eval(",
            "https://",
            "http://",
        ] {
            assert!(!text.contains(forbidden), "{name} uses {forbidden}");
        }
    }
    let missing = app.call(Method::GET, "/app/nothing.js", None, None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    app.cleanup().await;
}
