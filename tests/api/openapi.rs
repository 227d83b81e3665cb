//! The OpenAPI document and the router agree: every documented operation is
//! a real route, and every route the SPEC names so far is documented.

use axum::http::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::spawn_app;

/// The `/api/v1` operations that exist; each feature adds its routes here.
const EXPECTED: &[(&str, &str)] = &[
    ("post", "/api/v1/auth/register"),
    ("post", "/api/v1/auth/login"),
    ("post", "/api/v1/auth/refresh"),
    ("post", "/api/v1/auth/logout"),
    ("get", "/api/v1/auth/me"),
    ("get", "/api/v1/patients"),
    ("post", "/api/v1/patients"),
    ("get", "/api/v1/patients/{id}"),
    ("patch", "/api/v1/patients/{id}"),
    ("put", "/api/v1/patients/{id}"),
    ("delete", "/api/v1/patients/{id}"),
    ("get", "/api/v1/patients/{id}/export"),
    ("post", "/api/v1/patients/{id}/erase"),
    ("get", "/api/v1/audit"),
    ("get", "/api/v1/admin/clinics"),
    ("get", "/api/v1/admin/clinics/{id}"),
    ("post", "/api/v1/admin/clinics/{id}/suspend"),
    ("post", "/api/v1/admin/clinics/{id}/activate"),
    ("get", "/api/v1/documents"),
    ("post", "/api/v1/documents"),
    ("get", "/api/v1/documents/{id}"),
    ("patch", "/api/v1/documents/{id}"),
    ("put", "/api/v1/documents/{id}"),
    ("delete", "/api/v1/documents/{id}"),
    ("post", "/api/v1/documents/{id}/convert"),
    ("get", "/api/v1/users"),
    ("post", "/api/v1/users"),
    ("get", "/api/v1/users/{id}"),
    ("patch", "/api/v1/users/{id}"),
    ("put", "/api/v1/users/{id}"),
    ("delete", "/api/v1/users/{id}"),
    ("get", "/api/v1/practitioners"),
    ("post", "/api/v1/practitioners"),
    ("get", "/api/v1/practitioners/{id}"),
    ("patch", "/api/v1/practitioners/{id}"),
    ("put", "/api/v1/practitioners/{id}"),
    ("delete", "/api/v1/practitioners/{id}"),
    ("get", "/api/v1/products-services"),
    ("post", "/api/v1/products-services"),
    ("get", "/api/v1/products-services/{id}"),
    ("patch", "/api/v1/products-services/{id}"),
    ("put", "/api/v1/products-services/{id}"),
    ("delete", "/api/v1/products-services/{id}"),
    ("get", "/api/v1/categories"),
    ("post", "/api/v1/categories"),
    ("get", "/api/v1/categories/{id}"),
    ("patch", "/api/v1/categories/{id}"),
    ("put", "/api/v1/categories/{id}"),
    ("delete", "/api/v1/categories/{id}"),
    ("get", "/api/v1/clinic"),
    ("patch", "/api/v1/clinic/settings"),
    ("put", "/api/v1/clinic/settings"),
    ("get", "/api/v1/appointments"),
    ("post", "/api/v1/appointments"),
    ("get", "/api/v1/appointments/{id}"),
    ("patch", "/api/v1/appointments/{id}"),
    ("put", "/api/v1/appointments/{id}"),
    ("delete", "/api/v1/appointments/{id}"),
    ("get", "/api/v1/appointments/{id}/items"),
    ("post", "/api/v1/appointments/{id}/items"),
    ("delete", "/api/v1/appointments/{id}/items/{itemId}"),
    ("get", "/api/v1/medical-records"),
    ("post", "/api/v1/medical-records"),
    ("get", "/api/v1/medical-records/{id}"),
    ("patch", "/api/v1/medical-records/{id}"),
    ("put", "/api/v1/medical-records/{id}"),
    ("delete", "/api/v1/medical-records/{id}"),
    ("get", "/api/v1/consent-templates"),
    ("post", "/api/v1/consent-templates"),
    ("get", "/api/v1/consent-templates/{id}"),
    ("patch", "/api/v1/consent-templates/{id}"),
    ("put", "/api/v1/consent-templates/{id}"),
    ("delete", "/api/v1/consent-templates/{id}"),
    ("get", "/api/v1/consents"),
    ("post", "/api/v1/consents"),
    ("get", "/api/v1/consents/{id}"),
    ("patch", "/api/v1/consents/{id}"),
    ("put", "/api/v1/consents/{id}"),
    ("delete", "/api/v1/consents/{id}"),
];

fn operations(document: &Value) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_some() {
                found.push((method.to_owned(), path.clone()));
            }
        }
    }
    found
}

#[tokio::test]
async fn every_route_is_documented_and_every_documented_route_exists() {
    let app = spawn_app().await;
    let response = app
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(
        response.body["openapi"].as_str().map(|v| &v[..2]),
        Some("3.")
    );
    let documented = operations(&response.body);
    for (method, path) in EXPECTED {
        assert!(
            documented.contains(&(method.to_string(), path.to_string())),
            "{method} {path} is not in the OpenAPI document"
        );
    }
    for (method, path) in &documented {
        let concrete = path
            .replace("{id}", &uuid::Uuid::new_v4().to_string())
            .replace("{itemId}", &uuid::Uuid::new_v4().to_string());
        let method: Method = method.to_uppercase().parse().unwrap();
        let answer = app
            .call(method.clone(), &concrete, None, Some(serde_json::json!({})))
            .await;
        assert!(
            answer.status != StatusCode::NOT_FOUND
                && answer.status != StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path} is documented but not routed ({})",
            answer.status
        );
    }
    let docs = app.call(Method::GET, "/docs", None, None).await;
    assert_eq!(docs.status, StatusCode::OK);
    assert!(docs
        .body
        .as_str()
        .unwrap_or_default()
        .contains("/api/v1/openapi.json"));
    app.cleanup().await;
}
