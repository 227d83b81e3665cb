use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp};
use crate::users::staff;

async fn category(app: &TestApp, token: &str, name: &str) -> String {
    let response = app
        .post("/api/v1/categories", token, json!({"name": name}))
        .await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.body);
    response.id()
}

fn sorted(ids: &[&str]) -> Value {
    let mut ids: Vec<&str> = ids.to_vec();
    ids.sort();
    json!(ids)
}

#[tokio::test]
async fn product_lifecycle_with_categories() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Catalogue").await;
    let care = category(&app, &clinic.token, "Soins").await;
    let kits = category(&app, &clinic.token, "Kits").await;
    let created = app
        .post(
            "/api/v1/products-services",
            &clinic.token,
            json!({"name": "Consultation", "code": "CS", "unitPriceCents": 2650,
                   "durationMinutes": 20, "categoryIds": [care, care]}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.id();
    assert_eq!(created.data()["kind"], "service");
    assert_eq!(created.data()["vatRate"], 0);
    assert_eq!(created.data()["isActive"], true);
    assert_eq!(created.data()["unitPriceCents"], 2650);
    assert_eq!(created.data()["categoryIds"], json!([care]));

    let path = format!("/api/v1/products-services/{id}");
    let patched = app
        .patch(
            &path,
            &clinic.token,
            json!({"kind": "product", "vatRate": 2000, "durationMinutes": null,
                   "categoryIds": [kits, care]}),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    assert_eq!(patched.data()["kind"], "product");
    assert_eq!(patched.data()["vatRate"], 2000);
    assert!(patched.data()["durationMinutes"].is_null());
    assert_eq!(patched.data()["categoryIds"], sorted(&[&kits, &care]));
    // Absent categoryIds keep the list; PUT means the same as PATCH.
    let put = app
        .call(
            Method::PUT,
            &path,
            Some(&clinic.token),
            Some(json!({"unitPriceCents": 0})),
        )
        .await;
    assert_eq!(put.data()["unitPriceCents"], 0);
    assert_eq!(put.data()["categoryIds"], sorted(&[&kits, &care]));
    assert_eq!(put.data()["code"], "CS");
    let emptied = app
        .patch(&path, &clinic.token, json!({"categoryIds": []}))
        .await;
    assert_eq!(emptied.data()["categoryIds"], json!([]));
    let read = app.get(&path, &clinic.token).await;
    assert_eq!(read.data()["categoryIds"], json!([]));
    assert_eq!(read.data()["vatRate"], 2000);

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
    let list = app.get("/api/v1/products-services", &clinic.token).await;
    assert_eq!(list.body["pagination"]["total"], 0);
    app.cleanup().await;
}

#[tokio::test]
async fn products_are_listed_by_name_and_searched_by_name_and_code() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Search").await;
    for (name, code) in [("Vaccin", "VAC-1"), ("Bilan", "BIL"), ("Attelle", "ATT")] {
        app.post(
            "/api/v1/products-services",
            &clinic.token,
            json!({"name": name, "code": code, "unitPriceCents": 100}),
        )
        .await;
    }
    let list = app
        .get("/api/v1/products-services?limit=2", &clinic.token)
        .await;
    assert_eq!(
        list.body["pagination"],
        json!({"total": 3, "limit": 2, "offset": 0})
    );
    assert_eq!(list.data()[0]["name"], "Attelle");
    assert_eq!(list.data()[1]["name"], "Bilan");
    for (search, expected) in [("vac", 1), ("bil", 1), ("-1", 1), ("a", 3), ("%25", 0)] {
        let found = app
            .get(
                &format!("/api/v1/products-services?search={search}"),
                &clinic.token,
            )
            .await;
        assert_eq!(found.body["pagination"]["total"], expected, "{search}");
    }
    app.cleanup().await;
}

#[tokio::test]
async fn product_requests_name_each_invalid_field() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Validation").await;
    let refused = app
        .post(
            "/api/v1/products-services",
            &clinic.token,
            json!({"kind": "gift", "unitPriceCents": -5, "vatRate": 10001,
                   "durationMinutes": 0, "code": " ", "categoryIds": [uuid::Uuid::new_v4()]}),
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    let mut fields = refused.detail_fields();
    fields.sort();
    assert_eq!(
        fields,
        [
            "categoryIds",
            "code",
            "durationMinutes",
            "kind",
            "name",
            "unitPriceCents",
            "vatRate"
        ]
    );
    for (body, field) in [
        (
            json!({"name": "A", "unitPriceCents": 12.5}),
            "unitPriceCents",
        ),
        (
            json!({"name": "A", "unitPriceCents": "12"}),
            "unitPriceCents",
        ),
        (
            json!({"name": "A", "unitPriceCents": 1, "vatRate": 19.6}),
            "vatRate",
        ),
        (
            json!({"name": "A", "unitPriceCents": 1, "categoryIds": "x"}),
            "categoryIds",
        ),
        (
            json!({"name": "A", "unitPriceCents": 1, "kind": null}),
            "kind",
        ),
        (
            json!({"name": "A", "unitPriceCents": 1, "price": 1}),
            "price",
        ),
    ] {
        let response = app
            .post("/api/v1/products-services", &clinic.token, body.clone())
            .await;
        assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(
            response.detail_fields().iter().any(|f| f.contains(field)),
            "{body}: {}",
            response.body
        );
    }
    let id = app
        .post(
            "/api/v1/products-services",
            &clinic.token,
            json!({"name": "A", "unitPriceCents": 1}),
        )
        .await
        .id();
    let cleared = app
        .patch(
            &format!("/api/v1/products-services/{id}"),
            &clinic.token,
            json!({"name": null, "unitPriceCents": null}),
        )
        .await;
    let mut fields = cleared.detail_fields();
    fields.sort();
    assert_eq!(fields, ["name", "unitPriceCents"]);
    let empty = app
        .post("/api/v1/categories", &clinic.token, json!({}))
        .await;
    assert_eq!(empty.detail_fields(), ["name"]);
    app.cleanup().await;
}

#[tokio::test]
async fn codes_and_category_names_are_unique_whatever_their_case() {
    let app = spawn_app().await;
    let a = app.register_clinic("Alpha").await;
    let b = app.register_clinic("Beta").await;
    let body = |code: &str| json!({"name": "Acte", "code": code, "unitPriceCents": 1000});
    let first = app
        .post("/api/v1/products-services", &a.token, body("ECG"))
        .await;
    assert_eq!(first.status, StatusCode::CREATED);
    let twice = app
        .post("/api/v1/products-services", &a.token, body("ecg"))
        .await;
    assert_eq!(
        (twice.status, twice.code()),
        (StatusCode::CONFLICT, "conflict")
    );
    let other = app
        .post("/api/v1/products-services", &a.token, body("EEG"))
        .await
        .id();
    let renamed = app
        .patch(
            &format!("/api/v1/products-services/{other}"),
            &a.token,
            json!({"code": "Ecg"}),
        )
        .await;
    assert_eq!(renamed.status, StatusCode::CONFLICT);
    // Codes are per clinic, and a deleted row frees its code.
    assert_eq!(
        app.post("/api/v1/products-services", &b.token, body("ECG"))
            .await
            .status,
        StatusCode::CREATED
    );
    app.delete(
        &format!("/api/v1/products-services/{}", first.id()),
        &a.token,
    )
    .await;
    assert_eq!(
        app.post("/api/v1/products-services", &a.token, body("ecg"))
            .await
            .status,
        StatusCode::CREATED
    );

    let soins = category(&app, &a.token, "Soins").await;
    let again = app
        .post("/api/v1/categories", &a.token, json!({"name": "SOINS"}))
        .await;
    assert_eq!(
        (again.status, again.code()),
        (StatusCode::CONFLICT, "conflict")
    );
    let kits = category(&app, &a.token, "Kits").await;
    let clash = app
        .patch(
            &format!("/api/v1/categories/{kits}"),
            &a.token,
            json!({"name": "soins"}),
        )
        .await;
    assert_eq!(clash.status, StatusCode::CONFLICT);
    category(&app, &b.token, "Soins").await;
    app.delete(&format!("/api/v1/categories/{soins}"), &a.token)
        .await;
    category(&app, &a.token, "soins").await;
    app.cleanup().await;
}

#[tokio::test]
async fn category_lifecycle_and_deletion_unlinks_products() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Categories").await;
    let created = app
        .post(
            "/api/v1/categories",
            &clinic.token,
            json!({"name": " Imagerie ", "description": "Radiologie et échographie"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.data()["name"], "Imagerie");
    let id = created.id();
    let path = format!("/api/v1/categories/{id}");
    let patched = app
        .patch(&path, &clinic.token, json!({"description": null}))
        .await;
    assert!(patched.data()["description"].is_null());
    assert_eq!(patched.data()["name"], "Imagerie");
    category(&app, &clinic.token, "Analyses").await;
    let list = app.get("/api/v1/categories", &clinic.token).await;
    assert_eq!(list.body["pagination"]["total"], 2);
    assert_eq!(list.data()[0]["name"], "Analyses");
    let found = app
        .get("/api/v1/categories?search=imag", &clinic.token)
        .await;
    assert_eq!(found.body["pagination"]["total"], 1);

    let product = app
        .post(
            "/api/v1/products-services",
            &clinic.token,
            json!({"name": "Radio", "unitPriceCents": 4000, "categoryIds": [id]}),
        )
        .await
        .id();
    assert_eq!(
        app.delete(&path, &clinic.token).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.get(&path, &clinic.token).await.status,
        StatusCode::NOT_FOUND
    );
    let read = app
        .get(
            &format!("/api/v1/products-services/{product}"),
            &clinic.token,
        )
        .await;
    assert_eq!(read.data()["categoryIds"], json!([]));
    // A deleted category cannot be given again.
    let refused = app
        .patch(
            &format!("/api/v1/products-services/{product}"),
            &clinic.token,
            json!({"categoryIds": [id]}),
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(refused.detail_fields(), ["categoryIds"]);
    app.cleanup().await;
}

#[tokio::test]
async fn another_clinics_catalogue_is_out_of_reach() {
    let app = spawn_app().await;
    let a = app.register_clinic("Alpha").await;
    let b = app.register_clinic("Beta").await;
    let b_category = category(&app, &b.token, "Secret").await;
    let b_product = app
        .post(
            "/api/v1/products-services",
            &b.token,
            json!({"name": "Secret", "unitPriceCents": 1, "categoryIds": [b_category]}),
        )
        .await
        .id();
    for path in [
        format!("/api/v1/products-services/{b_product}"),
        format!("/api/v1/categories/{b_category}"),
    ] {
        assert_eq!(app.get(&path, &a.token).await.status, StatusCode::NOT_FOUND);
        assert_eq!(
            app.patch(&path, &a.token, json!({"name": "Stolen"}))
                .await
                .status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            app.delete(&path, &a.token).await.status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(app.get(&path, &b.token).await.data()["name"], "Secret");
    }
    // B's category in A's body names nothing A has.
    let refused = app
        .post(
            "/api/v1/products-services",
            &a.token,
            json!({"name": "Mine", "unitPriceCents": 1, "categoryIds": [b_category]}),
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(refused.detail_fields(), ["categoryIds"]);
    for list in ["/api/v1/products-services", "/api/v1/categories"] {
        assert_eq!(app.get(list, &a.token).await.body["pagination"]["total"], 0);
    }
    app.cleanup().await;
}

#[tokio::test]
async fn staff_other_than_admins_read_the_catalogue_but_cannot_change_it() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Roles").await;
    let category_id = category(&app, &clinic.token, "Soins").await;
    let product_id = app
        .post(
            "/api/v1/products-services",
            &clinic.token,
            json!({"name": "Acte", "unitPriceCents": 1}),
        )
        .await
        .id();
    for role in ["doctor", "secretary", "readonly"] {
        let member = staff(&app, &clinic.token, role).await;
        for (collection, id) in [
            ("/api/v1/products-services", &product_id),
            ("/api/v1/categories", &category_id),
        ] {
            let item = format!("{collection}/{id}");
            assert_eq!(
                app.get(collection, &member.token).await.status,
                StatusCode::OK
            );
            assert_eq!(app.get(&item, &member.token).await.status, StatusCode::OK);
            for response in [
                app.post(
                    collection,
                    &member.token,
                    json!({"name": "X", "unitPriceCents": 1}),
                )
                .await,
                app.patch(&item, &member.token, json!({"name": "Y"})).await,
                app.call(Method::PUT, &item, Some(&member.token), Some(json!({})))
                    .await,
                app.delete(&item, &member.token).await,
            ] {
                assert_eq!(
                    (response.status, response.code()),
                    (StatusCode::FORBIDDEN, "forbidden"),
                    "{role} {collection}"
                );
            }
        }
    }
    app.cleanup().await;
}
