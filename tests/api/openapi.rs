//! The OpenAPI document and the router agree: every documented operation is
//! a real route, every route the SPEC names so far is documented, and the
//! document describes the envelopes and errors the API really sends.

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

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
    ("patch", "/api/v1/admin/clinics/{id}"),
    ("get", "/api/v1/admin/users"),
    ("get", "/api/v1/admin/audit"),
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
    app.cleanup().await;
}

/// `/docs` and its script and style come from the binary, under a policy
/// that lets the page load nothing from any other origin, nor run inline
/// script.
#[tokio::test]
async fn the_docs_page_is_served_whole_by_the_binary_under_a_strict_policy() {
    let app = spawn_app().await;
    for (path, content_type, needle) in [
        ("/docs", "text/html", "/docs/docs.js"),
        ("/docs/docs.js", "text/javascript", "/api/v1/openapi.json"),
        ("/docs/docs.css", "text/css", "font"),
    ] {
        let answer = app.call(Method::GET, path, None, None).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}");
        let header = |name| answer.headers[name].to_str().unwrap_or_default().to_owned();
        assert!(
            header(axum::http::header::CONTENT_TYPE).starts_with(content_type),
            "{path}"
        );
        let policy = header(axum::http::header::CONTENT_SECURITY_POLICY);
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "connect-src 'self'",
        ] {
            assert!(policy.contains(directive), "{path}: {policy}");
        }
        assert!(!policy.contains("unsafe-inline"), "{path}: {policy}");
        let body = answer.body.as_str().unwrap_or_default();
        assert!(body.contains(needle), "{path}");
        // Nothing fetched from elsewhere: no absolute URL, no inline script.
        assert!(!body.contains("://"), "{path} names another origin");
        if path == "/docs" {
            assert!(!body.contains("<script>"), "inline script in /docs");
        }
    }
    app.cleanup().await;
}

/// What every operation answers, as the document says it: 2xx JSON in the
/// `{success, data, pagination?}` envelope, errors in `ErrorEnvelope`, and
/// the errors its route can produce.
#[tokio::test]
async fn answers_are_documented_in_their_envelopes() {
    let app = spawn_app().await;
    let document = app
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await
        .body;
    let error_envelope = json!({"$ref": "#/components/schemas/ErrorEnvelope"});
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            let name = format!("{method} {path}");
            let responses = operation["responses"].as_object().expect("responses");
            for (status, response) in responses {
                let schema = &response["content"]["application/json"]["schema"];
                if !status.starts_with('2') {
                    assert_eq!(schema, &error_envelope, "{name} {status}");
                    continue;
                }
                if status == "204" {
                    assert!(response.get("content").is_none(), "{name} {status}");
                    continue;
                }
                assert_eq!(schema["type"], "object", "{name} {status}");
                assert_eq!(schema["required"], json!(["success", "data"]), "{name}");
                assert_eq!(schema["properties"]["success"]["type"], "boolean", "{name}");
                let data = &schema["properties"]["data"];
                assert!(data.is_object(), "{name} {status} has no data");
                let pagination = &schema["properties"]["pagination"];
                if data["type"] == "array" {
                    assert_eq!(
                        pagination["$ref"], "#/components/schemas/Pagination",
                        "{name}"
                    );
                } else {
                    assert!(pagination.is_null(), "{name}");
                }
            }
            let has = |status: &str| responses.contains_key(status);
            // Public operations say so with `security: []`.
            let public = operation["security"] == json!([]);
            if !public {
                assert!(has("401") && has("403"), "{name} lacks 401/403");
            }
            if operation.get("requestBody").is_some() {
                for status in ["400", "413", "415", "422"] {
                    assert!(has(status), "{name} lacks {status}");
                }
            }
            if path.contains('{') {
                assert!(has("400") && has("404"), "{name} lacks 400/404");
            }
        }
    }
    let login = &document["paths"]["/api/v1/auth/login"]["post"]["responses"];
    assert!(login.get("429").is_some());
    let patients = &document["paths"]["/api/v1/patients"]["get"]["responses"];
    assert!(patients.get("503").is_some());

    // The envelopes as documented are what the API sends.
    let clinic = app.register_clinic("Envelopes").await;
    app.create_patient(&clinic.token, "Marie", "Curie").await;
    let list = app.get("/api/v1/patients", &clinic.token).await;
    let keys: Vec<&String> = list.body.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["data", "pagination", "success"]);
    let refused = app
        .post("/api/v1/patients", &clinic.token, json!({"firstName": ""}))
        .await;
    let error = refused.body["error"].as_object().unwrap();
    let body_schema = &document["components"]["schemas"]["ErrorBody"];
    for key in error.keys() {
        assert!(body_schema["properties"].get(key).is_some(), "{key}");
    }
    assert_eq!(body_schema["properties"]["details"]["type"], "array");
    assert_eq!(
        body_schema["properties"]["details"]["items"]["type"],
        "object"
    );
    assert!(refused.body["error"]["details"][0].is_object());
    app.cleanup().await;
}

/// Request schemas mark what a create must carry and what cannot be null.
#[tokio::test]
async fn create_bodies_require_what_the_api_requires() {
    let app = spawn_app().await;
    let document = app
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await
        .body;
    let body_of = |path: &str, method: &str| {
        let reference = document["paths"][path][method]["requestBody"]["content"]
            ["application/json"]["schema"]["$ref"]
            .as_str()
            .unwrap_or_else(|| panic!("{method} {path} has no body reference"))
            .rsplit('/')
            .next()
            .unwrap()
            .to_owned();
        document["components"]["schemas"][&reference].clone()
    };
    let create = body_of("/api/v1/patients", "post");
    assert_eq!(create["required"], json!(["firstName", "lastName"]));
    let update = body_of("/api/v1/patients/{id}", "patch");
    assert!(update.get("required").is_none());
    assert_eq!(update["properties"]["firstName"]["type"], "string");
    assert_eq!(
        create["properties"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        update["properties"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>()
    );
    app.cleanup().await;
}
