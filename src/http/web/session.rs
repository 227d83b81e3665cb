//! Browser sessions: the opt-in cookie mode of `/auth/register`,
//! `/auth/login` and `/auth/refresh`.
//!
//! A request carrying `X-MedicalPro-Client: web` gets its refresh token in
//! an `HttpOnly; Secure; SameSite=Strict` cookie scoped to
//! `/api/v1/auth/refresh`, never in the body, so no page script can read it.
//! Refreshing with that cookie (and ending the session with
//! `DELETE /auth/refresh`) must come from this site's own pages: the request
//! carries `X-MedicalPro-CSRF: 1` (a custom header a cross-site form cannot
//! send, and a cross-site script cannot without a CORS preflight the server
//! never grants), and its `Sec-Fetch-Site` and `Origin`, when present, say
//! same origin. Other clients keep the JSON tokens, unchanged.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponseParts, ResponseParts};

use super::super::error::ApiError;
use crate::auth::session::Tokens;

/// The header that asks for the cookie mode.
pub const CLIENT_HEADER: &str = "x-medicalpro-client";
/// The header a cookie-based refresh must carry.
pub const CSRF_HEADER: &str = "x-medicalpro-csrf";
/// The refresh cookie's name and path.
pub const COOKIE_NAME: &str = "medicalpro_refresh";
pub const COOKIE_PATH: &str = "/api/v1/auth/refresh";
/// How long a browser keeps the refresh cookie: a working day. The refresh
/// token's own lifetime and `REFRESH_FAMILY_MAX_DAYS` still apply.
pub const COOKIE_MAX_AGE_SECONDS: u64 = 12 * 3600;

/// Which kind of client is asking: `Web` with `X-MedicalPro-Client: web`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientMode {
    Api,
    Web,
}

impl<S: Send + Sync> FromRequestParts<S> for ClientMode {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let web = parts
            .headers
            .get(CLIENT_HEADER)
            .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"web"));
        Ok(if web {
            ClientMode::Web
        } else {
            ClientMode::Api
        })
    }
}

impl ClientMode {
    /// In web mode, moves the refresh token out of `tokens` (the body then
    /// omits `refreshToken`) into the cookie to set.
    pub fn hand_over(self, tokens: &mut Tokens) -> Option<RefreshCookie> {
        match self {
            ClientMode::Api => None,
            ClientMode::Web => Some(RefreshCookie::Set(std::mem::take(
                &mut tokens.refresh_token,
            ))),
        }
    }
}

/// A `Set-Cookie` for the refresh cookie: set it, or clear it.
pub enum RefreshCookie {
    Set(String),
    Clear,
}

impl RefreshCookie {
    fn header(&self) -> String {
        let attributes = format!("Path={COOKIE_PATH}; HttpOnly; Secure; SameSite=Strict");
        match self {
            RefreshCookie::Set(token) => {
                format!("{COOKIE_NAME}={token}; {attributes}; Max-Age={COOKIE_MAX_AGE_SECONDS}")
            }
            RefreshCookie::Clear => format!("{COOKIE_NAME}=; {attributes}; Max-Age=0"),
        }
    }
}

impl IntoResponseParts for RefreshCookie {
    type Error = std::convert::Infallible;

    fn into_response_parts(self, mut res: ResponseParts) -> Result<ResponseParts, Self::Error> {
        // Refresh tokens are URL-safe random text; anything else is not sent.
        if let Ok(value) = HeaderValue::from_str(&self.header()) {
            res.headers_mut().append(header::SET_COOKIE, value);
        }
        Ok(res)
    }
}

/// The refresh token of a cookie-based request from this site's own pages:
/// `Err(Forbidden)` for a request that may be cross-site, `Ok(None)` when
/// there is no cookie.
pub fn same_site_cookie(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    if !same_origin(headers) {
        return Err(ApiError::CrossSite);
    }
    Ok(cookie(headers, COOKIE_NAME))
}

/// The request carries the CSRF header, and nothing says it comes from
/// another site.
fn same_origin(headers: &HeaderMap) -> bool {
    let text = |name: header::HeaderName| headers.get(name).map(|v| v.to_str().unwrap_or(""));
    let csrf = headers
        .get(CSRF_HEADER)
        .is_some_and(|value| value.as_bytes() == b"1");
    let fetch_site = text(header::HeaderName::from_static("sec-fetch-site"));
    let site_ok = fetch_site.map_or(true, |site| site == "same-origin");
    let origin_ok = match (text(header::ORIGIN), text(header::HOST)) {
        (None, _) => true,
        (Some(origin), Some(host)) => {
            origin
                .strip_prefix("https://")
                .or_else(|| origin.strip_prefix("http://"))
                == Some(host)
        }
        (Some(_), None) => false,
    };
    csrf && site_ok && origin_ok
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, value)| *key == name && !value.is_empty())
        .map(|(_, value)| value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn only_same_origin_requests_with_the_csrf_header_pass() {
        let base = [("x-medicalpro-csrf", "1"), ("host", "clinic.example:8080")];
        assert!(same_origin(&headers(&base)));
        let with = |extra: (&'static str, &'static str)| {
            let mut pairs = base.to_vec();
            pairs.push(extra);
            same_origin(&headers(&pairs))
        };
        assert!(with(("origin", "https://clinic.example:8080")));
        assert!(with(("sec-fetch-site", "same-origin")));
        assert!(!with(("origin", "https://evil.example")));
        assert!(!with(("origin", "null")));
        assert!(!with(("sec-fetch-site", "cross-site")));
        assert!(!with(("sec-fetch-site", "same-site")));
        assert!(!same_origin(&headers(&[("host", "clinic.example:8080")])));
        assert!(!same_origin(&headers(&[("x-medicalpro-csrf", "yes")])));
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        let map = headers(&[("cookie", "a=1; medicalpro_refresh=tok-en_1; b=2")]);
        assert_eq!(cookie(&map, COOKIE_NAME).as_deref(), Some("tok-en_1"));
        assert_eq!(
            cookie(&headers(&[("cookie", "medicalpro_refresh=")]), COOKIE_NAME),
            None
        );
    }
}
