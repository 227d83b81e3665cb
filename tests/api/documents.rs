//! Quotes, invoices and credit notes: computed amounts, field checks,
//! isolation between clinics, legal numbering (also under concurrency, with
//! issues failing after they took a number), state changes, conversion,
//! cancellation by credit note, and the audit trail.

use axum::http::{Method, StatusCode};
use futures::future::join_all;
use serde_json::{json, Value};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::helpers::{spawn_app, TestApp, TestResponse};

fn line(description: &str, quantity: i64, unit_price_cents: i64, vat_rate: i64) -> Value {
    json!({"description": description, "quantity": quantity,
           "unitPriceCents": unit_price_cents, "vatRate": vat_rate})
}

async fn create(app: &TestApp, token: &str, body: Value) -> TestResponse {
    app.post("/api/v1/documents", token, body).await
}

/// A draft of `kind` for `patient` with one 20 € line at 20 %.
async fn draft(
    app: &TestApp,
    token: &str,
    kind: &str,
    patient: &str,
    issue_date: Option<&str>,
) -> String {
    let mut body = json!({"documentType": kind, "patientId": patient,
                          "items": [line("Consultation", 1, 2000, 2000)]});
    if let Some(date) = issue_date {
        body["issueDate"] = json!(date);
    }
    let response = create(app, token, body).await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.body);
    response.id()
}

async fn set_status(app: &TestApp, token: &str, id: &str, status: &str) -> TestResponse {
    app.patch(
        &format!("/api/v1/documents/{id}"),
        token,
        json!({"status": status}),
    )
    .await
}

async fn issued(app: &TestApp, token: &str, id: &str) -> Value {
    let response = set_status(app, token, id, "sent").await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    response.data().clone()
}

async fn catalogue_row(db: &mut PgConnection, deleted: bool) -> Uuid {
    sqlx::query_scalar(
        "INSERT INTO products_services (name, unit_price_cents, vat_rate, deleted_at)
         VALUES ('Bilan', 5000, 2000, CASE WHEN $1 THEN now() END) RETURNING id",
    )
    .bind(deleted)
    .fetch_one(db)
    .await
    .unwrap()
}

fn this_year() -> i32 {
    chrono::Datelike::year(&chrono::Utc::now().date_naive())
}

#[tokio::test]
async fn documents_carry_computed_amounts_and_drafts_have_no_number() {
    let app = spawn_app().await;
    let a = app.register_clinic("Billing A").await;
    let b = app.register_clinic("Billing B").await;
    let patient = app.create_patient(&a.token, "Louis", "Pasteur").await;
    let created = create(
        &app,
        &a.token,
        json!({"documentType": "quote", "patientId": patient, "issueDate": "2026-03-02",
               "dueDate": "2026-04-01",
               "items": [line("Soins", 3, 333, 550), line("Pansement", 1, 10, 500),
                         line("Bilan", 2, 1000, 2000)]}),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let data = created.data();
    // 3 × 3.33 = 9.99, 5.5 % = 0.54945 → 0.55; 0.10 at 5 % = 0.005 → 0.01
    // (half up); 2 × 10.00 at 20 % = 4.00.
    let items = data["items"].as_array().unwrap();
    let amounts: Vec<(i64, i64, i64)> = items
        .iter()
        .map(|i| {
            (
                i["subtotalCents"].as_i64().unwrap(),
                i["taxCents"].as_i64().unwrap(),
                i["totalCents"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        amounts,
        vec![(999, 55, 1054), (10, 1, 11), (2000, 400, 2400)]
    );
    assert_eq!(
        (
            &data["subtotalCents"],
            &data["taxCents"],
            &data["totalCents"]
        ),
        (&json!(3009), &json!(456), &json!(3465))
    );
    assert_eq!(items[0]["description"], "Soins");
    assert_eq!(items[0]["vatRate"], 550);
    assert!(items[0]["productServiceId"].is_null());
    assert!(data["number"].is_null());
    assert_eq!(data["status"], "draft");
    assert_eq!(data["currency"], "EUR");
    assert!(data["sourceDocumentId"].is_null());
    assert!(data["createdAt"].is_string() && data["updatedAt"].is_string());
    let id = created.id();

    let read = app.get(&format!("/api/v1/documents/{id}"), &a.token).await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.data()["totalCents"], 3465);
    assert_eq!(read.data()["items"].as_array().unwrap().len(), 3);

    // Editing a draft's items replaces them and recomputes the totals.
    let edited = app
        .patch(
            &format!("/api/v1/documents/{id}"),
            &a.token,
            json!({"items": [line("Bilan", 1, 1000, 2000)], "currency": "chf"}),
        )
        .await;
    assert_eq!(edited.status, StatusCode::OK, "{}", edited.body);
    assert_eq!(edited.data()["totalCents"], 1200);
    assert_eq!(edited.data()["currency"], "CHF");
    assert_eq!(edited.data()["issueDate"], "2026-03-02");
    assert_eq!(edited.data()["items"].as_array().unwrap().len(), 1);

    let invoice = draft(&app, &a.token, "invoice", &patient, None).await;
    let other = app.create_patient(&a.token, "Marie", "Curie").await;
    draft(&app, &a.token, "invoice", &other, None).await;
    for (query, expected) in [
        ("", 3),
        ("?documentType=quote", 1),
        ("?documentType=invoice", 2),
        ("?status=draft", 3),
        ("?status=sent", 0),
        (&format!("?patientId={patient}") as &str, 2),
        (&format!("?patientId={patient}&documentType=invoice"), 1),
        ("?limit=1&offset=2", 3),
        ("?limit=1&offset=3", 3),
        ("?documentType=invoice&offset=5", 2),
    ] {
        let list = app
            .get(&format!("/api/v1/documents{query}"), &a.token)
            .await;
        assert_eq!(list.status, StatusCode::OK, "{query}");
        assert_eq!(list.body["pagination"]["total"], expected, "{query}");
    }
    let newest = app.get("/api/v1/documents?limit=1", &a.token).await;
    assert_eq!(newest.data().as_array().unwrap().len(), 1);
    assert_eq!(newest.data()[0]["items"].as_array().unwrap().len(), 1);
    for bad in [
        "documentType=receipt",
        "status=open",
        "patientId=12",
        "limit=0",
        "sort=x",
    ] {
        let response = app.get(&format!("/api/v1/documents?{bad}"), &a.token).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{bad}");
    }

    // Clinic B sees none of it, whatever the id.
    let list_b = app.get("/api/v1/documents", &b.token).await;
    assert_eq!(list_b.body["pagination"]["total"], 0);
    for path in [
        format!("/api/v1/documents/{id}"),
        format!("/api/v1/documents/{invoice}"),
    ] {
        assert_eq!(app.get(&path, &b.token).await.status, StatusCode::NOT_FOUND);
        let patch = app.patch(&path, &b.token, json!({"status": "sent"})).await;
        assert_eq!(patch.status, StatusCode::NOT_FOUND);
        let put = app
            .call(
                Method::PUT,
                &path,
                Some(&b.token),
                Some(json!({"dueDate": "2026-05-01"})),
            )
            .await;
        assert_eq!(put.status, StatusCode::NOT_FOUND);
        assert_eq!(
            app.delete(&path, &b.token).await.status,
            StatusCode::NOT_FOUND
        );
        let convert = app
            .post(&format!("{path}/convert"), &b.token, json!({}))
            .await;
        assert_eq!(convert.status, StatusCode::NOT_FOUND);
    }
    assert_eq!(
        app.get(&format!("/api/v1/documents/{id}"), &a.token)
            .await
            .data()["status"],
        "draft",
        "untouched by clinic B"
    );
    app.cleanup().await;
}

#[tokio::test]
async fn invalid_documents_name_each_field_and_foreign_ids_are_refused() {
    let app = spawn_app().await;
    let a = app.register_clinic("Checks A").await;
    let b = app.register_clinic("Checks B").await;
    let patient_a = app.create_patient(&a.token, "Ana", "Lopez").await;
    let patient_b = app.create_patient(&b.token, "Bob", "Martin").await;
    let mut db_a = app.clinic_admin(a.id).await;
    let mut db_b = app.clinic_admin(b.id).await;
    let product_a = catalogue_row(&mut db_a, false).await;
    let deleted_a = catalogue_row(&mut db_a, true).await;
    let product_b = catalogue_row(&mut db_b, false).await;

    let everything_wrong = create(
        &app,
        &a.token,
        json!({"documentType": "receipt", "status": "paid", "currency": "euro",
               "issueDate": "2026-02-10", "dueDate": "2026-02-01",
               "items": [line("ok", 1, 100, 0),
                         {"description": "", "quantity": 0, "unitPriceCents": -5, "vatRate": 10001},
                         {"productServiceId": product_a}]}),
    )
    .await;
    assert_eq!(everything_wrong.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(everything_wrong.code(), "validation_failed");
    let fields = everything_wrong.detail_fields();
    for field in [
        "documentType",
        "patientId",
        "status",
        "currency",
        "dueDate",
        "items[1].description",
        "items[1].quantity",
        "items[1].unitPriceCents",
        "items[1].vatRate",
        "items[2].description",
        "items[2].quantity",
        "items[2].unitPriceCents",
        "items[2].vatRate",
    ] {
        assert!(
            fields.contains(&field.to_owned()),
            "{field} not in {fields:?}"
        );
    }
    assert!(
        !fields.iter().any(|f| f.starts_with("items[0]")),
        "{fields:?}"
    );

    let credit_note = create(
        &app,
        &a.token,
        json!({"documentType": "credit_note", "patientId": patient_a, "items": [line("x", 1, 1, 0)]}),
    )
    .await;
    assert_eq!(credit_note.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(credit_note.detail_fields(), vec!["documentType"]);

    let wrong_type = create(
        &app,
        &a.token,
        json!({"documentType": "quote", "patientId": patient_a,
               "items": [{"description": "x", "quantity": 1.5, "unitPriceCents": 1, "vatRate": 0}]}),
    )
    .await;
    assert_eq!(wrong_type.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(wrong_type.detail_fields(), vec!["items[0].quantity"]);

    for (items, field) in [
        (
            json!([line("x", 2, i64::MAX, 0)]),
            "items[0].unitPriceCents",
        ),
        (
            json!([line("x", 1, i64::MAX, 1)]),
            "items[0].unitPriceCents",
        ),
        (
            json!([
                line("x", 1, i64::MAX / 2, 0),
                line("y", 1, i64::MAX / 2, 0),
                line("z", 1, i64::MAX / 2, 0)
            ]),
            "items",
        ),
        (json!([line("x", 3_000_000_000, 1, 0)]), "items[0].quantity"),
    ] {
        let absurd = create(
            &app,
            &a.token,
            json!({"documentType": "invoice", "patientId": patient_a, "items": items}),
        )
        .await;
        assert_eq!(
            absurd.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            absurd.body
        );
        assert_eq!(absurd.detail_fields(), vec![field]);
    }

    // Ids of another clinic, or deleted rows, are 422 naming the field.
    let foreign = create(
        &app,
        &a.token,
        json!({"documentType": "invoice", "patientId": patient_b,
               "items": [{"productServiceId": product_a, "description": "ok", "quantity": 1, "unitPriceCents": 5000, "vatRate": 2000},
                         {"productServiceId": product_b, "description": "theirs", "quantity": 1, "unitPriceCents": 5000, "vatRate": 2000},
                         {"productServiceId": deleted_a, "description": "gone", "quantity": 1, "unitPriceCents": 5000, "vatRate": 2000}]}),
    )
    .await;
    assert_eq!(foreign.status, StatusCode::UNPROCESSABLE_ENTITY);
    let mut fields = foreign.detail_fields();
    fields.sort();
    assert_eq!(
        fields,
        vec![
            "items[1].productServiceId",
            "items[2].productServiceId",
            "patientId"
        ]
    );

    let good = create(
        &app,
        &a.token,
        json!({"documentType": "invoice", "patientId": patient_a,
               "items": [{"productServiceId": product_a, "description": "Bilan", "quantity": 1, "unitPriceCents": 5000, "vatRate": 2000}]}),
    )
    .await;
    assert_eq!(good.status, StatusCode::CREATED, "{}", good.body);
    assert_eq!(
        good.data()["items"][0]["productServiceId"],
        product_a.to_string()
    );
    let id = good.id();

    // The same rules on update, plus: the type never changes.
    let update = app
        .patch(
            &format!("/api/v1/documents/{id}"),
            &a.token,
            json!({"documentType": "quote", "patientId": patient_b,
                   "items": [{"productServiceId": product_b, "description": "x", "quantity": 1, "unitPriceCents": 1, "vatRate": 0}]}),
        )
        .await;
    assert_eq!(update.status, StatusCode::UNPROCESSABLE_ENTITY);
    let mut fields = update.detail_fields();
    fields.sort();
    assert_eq!(
        fields,
        vec!["documentType", "items[0].productServiceId", "patientId"]
    );
    let deleted_patient = app.create_patient(&a.token, "Gone", "Away").await;
    app.delete(&format!("/api/v1/patients/{deleted_patient}"), &a.token)
        .await;
    let to_deleted = app
        .patch(
            &format!("/api/v1/documents/{id}"),
            &a.token,
            json!({"patientId": deleted_patient}),
        )
        .await;
    assert_eq!(to_deleted.detail_fields(), vec!["patientId"]);
    let missing = app
        .patch(
            &format!("/api/v1/documents/{id}"),
            &a.token,
            json!({"patientId": Uuid::new_v4()}),
        )
        .await;
    assert_eq!(missing.detail_fields(), vec!["patientId"]);

    let list = app.get("/api/v1/documents", &a.token).await;
    assert_eq!(list.body["pagination"]["total"], 1, "nothing half-written");
    assert_eq!(
        list.data()[0]["totalCents"],
        6000,
        "the failed updates changed nothing"
    );
    let list_b = app.get("/api/v1/documents", &b.token).await;
    assert_eq!(list_b.body["pagination"]["total"], 0);
    app.cleanup().await;
}

#[tokio::test]
async fn issuing_numbers_each_type_and_year_from_0001_per_clinic() {
    let app = spawn_app().await;
    let a = app.register_clinic("Numbers A").await;
    let b = app.register_clinic("Numbers B").await;
    let pa = app.create_patient(&a.token, "Ana", "Lopez").await;
    let pb = app.create_patient(&b.token, "Bob", "Martin").await;

    let mut numbers = Vec::new();
    for (kind, date) in [
        ("quote", "2026-01-05"),
        ("quote", "2026-06-30"),
        ("invoice", "2026-02-01"),
        ("quote", "2025-12-31"),
        ("invoice", "2026-12-31"),
        ("invoice", "2027-01-01"),
    ] {
        let id = draft(&app, &a.token, kind, &pa, Some(date)).await;
        let document = issued(&app, &a.token, &id).await;
        assert_eq!(document["status"], "sent");
        assert_eq!(document["issueDate"], date);
        assert!(document["issuedAt"].is_string());
        numbers.push(document["number"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        numbers,
        [
            "Q-2026-0001",
            "Q-2026-0002",
            "INV-2026-0001",
            "Q-2025-0001",
            "INV-2026-0002",
            "INV-2027-0001"
        ]
    );
    let search = app.get("/api/v1/documents?search=INV-2026", &a.token).await;
    assert_eq!(search.body["pagination"]["total"], 2);

    // Clinic B has its own counters.
    let first_b = draft(&app, &b.token, "invoice", &pb, Some("2026-02-01")).await;
    assert_eq!(
        issued(&app, &b.token, &first_b).await["number"],
        "INV-2026-0001"
    );

    // Without an issue date, issuing dates it today (the clinic's day).
    let undated = draft(&app, &a.token, "quote", &pa, None).await;
    let document = issued(&app, &a.token, &undated).await;
    let issue_date = document["issueDate"].as_str().unwrap();
    let year: i32 = issue_date[..4].parse().unwrap();
    assert!(
        (this_year() - 1..=this_year()).contains(&year),
        "{issue_date}"
    );
    let expected = if year == 2026 {
        "Q-2026-0003".to_owned()
    } else {
        format!("Q-{year}-0001")
    };
    assert_eq!(document["number"], expected);

    // A document is issued with at least one line and a coherent due date;
    // a refused issue takes no number.
    let empty = create(
        &app,
        &a.token,
        json!({"documentType": "invoice", "patientId": pa, "issueDate": "2026-03-01"}),
    )
    .await;
    assert_eq!(empty.data()["totalCents"], 0);
    let refused = set_status(&app, &a.token, &empty.id(), "sent").await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(refused.detail_fields(), vec!["items"]);
    let late = create(
        &app,
        &a.token,
        json!({"documentType": "invoice", "patientId": pa, "dueDate": "2000-01-01",
        "items": [line("x", 1, 100, 0)]}),
    )
    .await;
    let refused = set_status(&app, &a.token, &late.id(), "sent").await;
    assert_eq!(refused.detail_fields(), vec!["dueDate"]);
    // Items and status in one request: edited, then issued.
    let fixed = app
        .patch(
            &format!("/api/v1/documents/{}", empty.id()),
            &a.token,
            json!({"items": [line("x", 1, 100, 0)], "status": "sent"}),
        )
        .await;
    assert_eq!(fixed.status, StatusCode::OK, "{}", fixed.body);
    assert_eq!(fixed.data()["number"], "INV-2026-0003");
    // Created already sent: numbered at once.
    let direct = create(
        &app,
        &a.token,
        json!({"documentType": "invoice", "patientId": pa, "status": "sent",
        "issueDate": "2026-04-01", "items": [line("x", 1, 100, 0)]}),
    )
    .await;
    assert_eq!(direct.status, StatusCode::CREATED, "{}", direct.body);
    assert_eq!(direct.data()["number"], "INV-2026-0004");
    assert_eq!(direct.data()["status"], "sent");
    app.cleanup().await;
}

#[tokio::test]
async fn issued_documents_cannot_be_edited_or_deleted_and_states_follow_the_rules() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("States").await;
    let token = &clinic.token;
    let patient = app.create_patient(token, "Ana", "Lopez").await;
    let invoice = draft(&app, token, "invoice", &patient, Some("2026-01-10")).await;
    let path = format!("/api/v1/documents/{invoice}");

    // A draft goes only to sent.
    for status in ["paid", "cancelled", "accepted"] {
        let refused = set_status(&app, token, &invoice, status).await;
        assert_eq!(
            (refused.status, refused.code()),
            (StatusCode::CONFLICT, "conflict"),
            "{status}"
        );
    }
    let bad = set_status(&app, token, &invoice, "archived").await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    issued(&app, token, &invoice).await;

    for body in [
        json!({"items": [line("x", 1, 1, 0)]}),
        json!({"dueDate": "2026-12-01"}),
        json!({"status": "paid", "dueDate": "2026-12-01"}),
        json!({}),
    ] {
        let refused = app.patch(&path, token, body.clone()).await;
        assert_eq!(
            (refused.status, refused.code()),
            (StatusCode::CONFLICT, "conflict"),
            "{body}"
        );
        let refused = app
            .call(Method::PUT, &path, Some(token), Some(body.clone()))
            .await;
        assert_eq!(refused.status, StatusCode::CONFLICT, "PUT {body}");
    }
    let deleted = app.delete(&path, token).await;
    assert_eq!(
        (deleted.status, deleted.code()),
        (StatusCode::CONFLICT, "conflict")
    );
    for status in ["draft", "sent", "accepted", "rejected"] {
        assert_eq!(
            set_status(&app, token, &invoice, status).await.status,
            StatusCode::CONFLICT,
            "{status}"
        );
    }
    let paid = set_status(&app, token, &invoice, "paid").await;
    assert_eq!(paid.status, StatusCode::OK);
    assert_eq!(paid.data()["status"], "paid");
    assert_eq!(paid.data()["number"], "INV-2026-0001");
    assert_eq!(
        set_status(&app, token, &invoice, "sent").await.status,
        StatusCode::CONFLICT
    );
    let read = app.get(&path, token).await;
    assert_eq!(read.data()["totalCents"], 2400, "unchanged");

    // Quotes: sent, then accepted or rejected, nothing else.
    let quote = draft(&app, token, "quote", &patient, Some("2026-01-10")).await;
    issued(&app, token, &quote).await;
    let edit = app
        .patch(
            &format!("/api/v1/documents/{quote}"),
            token,
            json!({"dueDate": "2026-02-01"}),
        )
        .await;
    assert_eq!(edit.status, StatusCode::CONFLICT);
    for status in ["paid", "cancelled", "draft"] {
        assert_eq!(
            set_status(&app, token, &quote, status).await.status,
            StatusCode::CONFLICT,
            "{status}"
        );
    }
    assert_eq!(
        set_status(&app, token, &quote, "rejected").await.status,
        StatusCode::OK
    );
    assert_eq!(
        set_status(&app, token, &quote, "accepted").await.status,
        StatusCode::CONFLICT
    );
    assert_eq!(
        app.delete(&format!("/api/v1/documents/{quote}"), token)
            .await
            .status,
        StatusCode::CONFLICT
    );

    // Drafts are deleted softly and gone from every view.
    let scrap = draft(&app, token, "quote", &patient, None).await;
    let scrap_path = format!("/api/v1/documents/{scrap}");
    assert_eq!(
        app.delete(&scrap_path, token).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.get(&scrap_path, token).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.delete(&scrap_path, token).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        set_status(&app, token, &scrap, "sent").await.status,
        StatusCode::NOT_FOUND
    );
    let list = app.get("/api/v1/documents", token).await;
    assert_eq!(list.body["pagination"]["total"], 2);
    app.cleanup().await;
}

#[tokio::test]
async fn an_accepted_quote_converts_once_into_a_draft_invoice() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Convert").await;
    let token = &clinic.token;
    let patient = app.create_patient(token, "Ana", "Lopez").await;
    let quote = create(
        &app,
        token,
        json!({"documentType": "quote", "patientId": patient, "currency": "CHF", "issueDate": "2026-02-02",
               "items": [line("Soins", 3, 333, 550), line("Bilan", 2, 1000, 2000)]}),
    )
    .await
    .id();
    let app_ref = &app;
    let convert = |id: String| async move {
        app_ref
            .post(&format!("/api/v1/documents/{id}/convert"), token, json!({}))
            .await
    };
    assert_eq!(
        convert(quote.clone()).await.status,
        StatusCode::CONFLICT,
        "draft quote"
    );
    issued(&app, token, &quote).await;
    assert_eq!(
        convert(quote.clone()).await.status,
        StatusCode::CONFLICT,
        "sent quote"
    );
    assert_eq!(
        set_status(&app, token, &quote, "accepted").await.status,
        StatusCode::OK
    );

    let converted = convert(quote.clone()).await;
    assert_eq!(converted.status, StatusCode::CREATED, "{}", converted.body);
    let invoice = converted.data().clone();
    assert_eq!(invoice["documentType"], "invoice");
    assert_eq!(invoice["status"], "draft");
    assert!(invoice["number"].is_null());
    assert!(invoice["issueDate"].is_null());
    assert_eq!(invoice["sourceDocumentId"], quote);
    assert_eq!(invoice["patientId"], patient);
    assert_eq!(invoice["currency"], "CHF");
    let quote_doc = app.get(&format!("/api/v1/documents/{quote}"), token).await;
    for field in ["subtotalCents", "taxCents", "totalCents"] {
        assert_eq!(invoice[field], quote_doc.data()[field], "{field}");
    }
    let strip = |items: &Value| -> Vec<Value> {
        items
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                let mut i = i.clone();
                i.as_object_mut().unwrap().remove("id");
                i
            })
            .collect()
    };
    assert_eq!(strip(&invoice["items"]), strip(&quote_doc.data()["items"]));

    let twice = convert(quote.clone()).await;
    assert_eq!(
        (twice.status, twice.code()),
        (StatusCode::CONFLICT, "conflict")
    );
    let invoice_id = invoice["id"].as_str().unwrap().to_owned();
    assert_eq!(
        convert(invoice_id.clone()).await.status,
        StatusCode::CONFLICT,
        "not a quote"
    );
    assert_eq!(
        convert(Uuid::new_v4().to_string()).await.status,
        StatusCode::NOT_FOUND
    );
    let quotes = app
        .get("/api/v1/documents?documentType=invoice", token)
        .await;
    assert_eq!(quotes.body["pagination"]["total"], 1);

    // The invoice is a normal draft: editable, and once deleted the quote
    // may be converted again.
    let number = issued(&app, token, &invoice_id).await["number"].clone();
    assert!(number.as_str().unwrap().starts_with("INV-2"), "{number}");
    let still = app.get(&format!("/api/v1/documents/{quote}"), token).await;
    assert_eq!(still.data()["status"], "accepted");
    let other_quote = draft(&app, token, "quote", &patient, None).await;
    issued(&app, token, &other_quote).await;
    set_status(&app, token, &other_quote, "accepted").await;
    let second = convert(other_quote.clone()).await.id();
    assert_eq!(
        app.delete(&format!("/api/v1/documents/{second}"), token)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(convert(other_quote).await.status, StatusCode::CREATED);
    app.cleanup().await;
}

#[tokio::test]
async fn cancelling_an_issued_invoice_issues_a_mirroring_credit_note() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Credit").await;
    let token = &clinic.token;
    let patient = app.create_patient(token, "Ana", "Lopez").await;
    let invoice = create(
        &app,
        token,
        json!({"documentType": "invoice", "patientId": patient, "issueDate": "2026-01-15",
               "items": [line("Soins", 3, 333, 550), line("Bilan", 2, 1000, 2000)]}),
    )
    .await
    .id();
    let draft_invoice = draft(&app, token, "invoice", &patient, None).await;
    assert_eq!(
        set_status(&app, token, &draft_invoice, "cancelled")
            .await
            .status,
        StatusCode::CONFLICT
    );
    issued(&app, token, &invoice).await;

    let cancelled = set_status(&app, token, &invoice, "cancelled").await;
    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.body);
    assert_eq!(cancelled.data()["status"], "cancelled");
    assert_eq!(cancelled.data()["number"], "INV-2026-0001");
    let credit_id = cancelled.data()["creditNoteId"]
        .as_str()
        .expect("creditNoteId")
        .to_owned();

    let credit = app
        .get(&format!("/api/v1/documents/{credit_id}"), token)
        .await;
    assert_eq!(credit.status, StatusCode::OK);
    let note = credit.data();
    let invoice_doc = app
        .get(&format!("/api/v1/documents/{invoice}"), token)
        .await;
    let original = invoice_doc.data();
    assert_eq!(original["creditNoteId"], credit_id.as_str());
    assert_eq!(note["documentType"], "credit_note");
    assert_eq!(note["status"], "sent");
    assert_eq!(note["sourceDocumentId"], invoice);
    assert_eq!(note["patientId"], patient);
    assert_eq!(note["currency"], original["currency"]);
    let year = note["issueDate"].as_str().unwrap()[..4].to_owned();
    assert_eq!(note["number"], format!("AV-{year}-0001"));
    assert!(note["issuedAt"].is_string());
    for field in ["subtotalCents", "taxCents", "totalCents"] {
        assert_eq!(
            note[field].as_i64().unwrap(),
            -original[field].as_i64().unwrap(),
            "{field}"
        );
    }
    assert_eq!(note["totalCents"], -3454);
    let (lines, mirrored) = (
        original["items"].as_array().unwrap(),
        note["items"].as_array().unwrap(),
    );
    assert_eq!(lines.len(), mirrored.len());
    for (line, mirror) in lines.iter().zip(mirrored) {
        assert_eq!(mirror["description"], line["description"]);
        assert_eq!(mirror["quantity"], line["quantity"]);
        assert_eq!(mirror["vatRate"], line["vatRate"]);
        for field in ["unitPriceCents", "subtotalCents", "taxCents", "totalCents"] {
            assert_eq!(
                mirror[field].as_i64().unwrap(),
                -line[field].as_i64().unwrap(),
                "{field}"
            );
        }
    }

    // The credit note is final; the invoice cannot be cancelled twice.
    let note_path = format!("/api/v1/documents/{credit_id}");
    assert_eq!(
        set_status(&app, token, &invoice, "cancelled").await.status,
        StatusCode::CONFLICT
    );
    for status in ["paid", "cancelled", "draft"] {
        assert_eq!(
            set_status(&app, token, &credit_id, status).await.status,
            StatusCode::CONFLICT
        );
    }
    assert_eq!(
        app.patch(&note_path, token, json!({"dueDate": "2026-03-01"}))
            .await
            .status,
        StatusCode::CONFLICT
    );
    assert_eq!(
        app.delete(&note_path, token).await.status,
        StatusCode::CONFLICT
    );
    assert_eq!(
        app.post(&format!("{note_path}/convert"), token, json!({}))
            .await
            .status,
        StatusCode::CONFLICT
    );

    // A paid invoice is cancelled the same way, with the next credit note number.
    let paid = draft(&app, token, "invoice", &patient, Some("2026-02-01")).await;
    issued(&app, token, &paid).await;
    set_status(&app, token, &paid, "paid").await;
    let cancelled = set_status(&app, token, &paid, "cancelled").await;
    assert_eq!(cancelled.status, StatusCode::OK);
    let second = cancelled.data()["creditNoteId"]
        .as_str()
        .unwrap()
        .to_owned();
    let second = app.get(&format!("/api/v1/documents/{second}"), token).await;
    assert_eq!(second.data()["number"], format!("AV-{year}-0002"));
    let notes = app
        .get("/api/v1/documents?documentType=credit_note", token)
        .await;
    assert_eq!(notes.body["pagination"]["total"], 2);
    app.cleanup().await;
}

#[tokio::test]
async fn concurrent_issues_are_numbered_in_order_without_gap_or_repeat() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Concurrency").await;
    let other = app.register_clinic("Bystander").await;
    let token = &clinic.token;
    let patient = app.create_patient(token, "Ana", "Lopez").await;
    let mut drafts = Vec::new();
    for _ in 0..50 {
        drafts.push(draft(&app, token, "invoice", &patient, Some("2026-05-04")).await);
    }
    // Every fifth issue fails inside the database after it took its number:
    // a trigger rejects writing a number onto those documents.
    let doomed: Vec<String> = drafts.iter().step_by(5).cloned().collect();
    assert_eq!(doomed.len(), 10);
    let mut db = app.clinic_admin(clinic.id).await;
    let list = doomed
        .iter()
        .map(|id| format!("'{id}'"))
        .collect::<Vec<_>>()
        .join(",");
    sqlx::raw_sql(&format!(
        "CREATE FUNCTION reject_some_issues() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             IF NEW.number IS NOT NULL AND NEW.id = ANY (ARRAY[{list}]::uuid[]) THEN
                 RAISE EXCEPTION 'issue rejected';
             END IF;
             RETURN NEW;
         END $$;
         CREATE TRIGGER reject_some_issues BEFORE UPDATE ON documents
             FOR EACH ROW EXECUTE FUNCTION reject_some_issues();"
    ))
    .execute(&mut db)
    .await
    .unwrap();

    let responses = join_all(drafts.iter().map(|id| set_status(&app, token, id, "sent"))).await;
    for (id, response) in drafts.iter().zip(&responses) {
        if doomed.contains(id) {
            assert_eq!(
                response.status,
                StatusCode::INTERNAL_SERVER_ERROR,
                "{}",
                response.body
            );
            assert_eq!(response.code(), "internal");
        } else {
            assert_eq!(response.status, StatusCode::OK, "{}", response.body);
        }
    }

    let rows: Vec<(Uuid, Option<String>, String)> =
        sqlx::query_as("SELECT id, number, status FROM documents ORDER BY number")
            .fetch_all(&mut db)
            .await
            .unwrap();
    let mut numbers: Vec<String> = Vec::new();
    for (id, number, status) in &rows {
        if doomed.contains(&id.to_string()) {
            assert_eq!((number, status.as_str()), (&None, "draft"), "{id}");
        } else {
            assert_eq!(status, "sent");
            numbers.push(number.clone().unwrap());
        }
    }
    let expected: Vec<String> = (1..=40).map(|n| format!("INV-2026-{n:04}")).collect();
    assert_eq!(numbers, expected);
    let last: i32 = sqlx::query_scalar(
        "SELECT last_number FROM document_counters WHERE document_type = 'invoice' AND year = 2026",
    )
    .fetch_one(&mut db)
    .await
    .unwrap();
    assert_eq!(last, 40);
    // The API answers with the same numbers.
    for (id, response) in drafts.iter().zip(&responses) {
        if !doomed.contains(id) {
            let stored = rows.iter().find(|r| r.0.to_string() == *id).unwrap();
            assert_eq!(response.data()["number"].as_str(), stored.1.as_deref());
        }
    }
    // Once the fault is gone, the next issue continues the sequence.
    sqlx::raw_sql("DROP TRIGGER reject_some_issues ON documents")
        .execute(&mut db)
        .await
        .unwrap();
    assert_eq!(
        issued(&app, token, &doomed[0]).await["number"],
        "INV-2026-0041"
    );
    let bystander = app.create_patient(&other.token, "Bob", "Martin").await;
    let theirs = draft(
        &app,
        &other.token,
        "invoice",
        &bystander,
        Some("2026-05-04"),
    )
    .await;
    assert_eq!(
        issued(&app, &other.token, &theirs).await["number"],
        "INV-2026-0001"
    );
    app.cleanup().await;
}

#[derive(Debug, sqlx::FromRow)]
struct AuditEvent {
    action: String,
    resource_id: Option<Uuid>,
    patient_id: Option<Uuid>,
    changed_fields: Vec<String>,
    details: Value,
}

#[tokio::test]
async fn document_reads_and_changes_are_audited() {
    let app = spawn_app().await;
    let clinic = app.register_clinic("Audited").await;
    let token = &clinic.token;
    let patient = app.create_patient(token, "Ana", "Lopez").await;
    let invoice = draft(&app, token, "invoice", &patient, Some("2026-01-10")).await;
    app.get(&format!("/api/v1/documents/{invoice}"), token)
        .await;
    app.get(
        &format!("/api/v1/documents?patientId={patient}&status=draft"),
        token,
    )
    .await;
    issued(&app, token, &invoice).await;
    let cancelled = set_status(&app, token, &invoice, "cancelled").await;
    let credit_note = cancelled.data()["creditNoteId"]
        .as_str()
        .unwrap()
        .to_owned();
    let scrap = draft(&app, token, "quote", &patient, None).await;
    app.delete(&format!("/api/v1/documents/{scrap}"), token)
        .await;
    // A refused change records nothing.
    app.delete(&format!("/api/v1/documents/{invoice}"), token)
        .await;

    let mut db = app.audit_trail(clinic.id).await;
    let events: Vec<AuditEvent> = sqlx::query_as(
        "SELECT action, resource_id, patient_id, changed_fields, details FROM audit_events
         WHERE resource_type = 'document' ORDER BY id",
    )
    .fetch_all(&mut db)
    .await
    .unwrap();
    let summary: Vec<(&str, Option<String>)> = events
        .iter()
        .map(|e| (e.action.as_str(), e.resource_id.map(|r| r.to_string())))
        .collect();
    let patient_id: Uuid = patient.parse().unwrap();
    assert_eq!(
        summary,
        vec![
            ("create", Some(invoice.clone())),
            ("read", Some(invoice.clone())),
            ("list", None),
            ("update", Some(invoice.clone())),
            ("update", Some(invoice.clone())),
            ("create", Some(credit_note.clone())),
            ("create", Some(scrap.clone())),
            ("delete", Some(scrap.clone())),
        ]
    );
    assert!(
        events.iter().all(|e| e.patient_id == Some(patient_id)),
        "every event names the patient"
    );
    assert_eq!(
        events[0].changed_fields,
        vec!["documentType", "patientId", "items", "issueDate"]
    );
    assert_eq!(events[2].details["status"], "draft");
    assert_eq!(events[2].details["search"], false);
    assert_eq!(
        events[3].changed_fields,
        vec!["status", "number", "issueDate", "issuedAt"]
    );
    assert_eq!(events[5].details["sourceDocumentId"], invoice);
    let text = events
        .iter()
        .map(|e| format!("{:?}", e))
        .collect::<String>();
    assert!(!text.contains("Consultation"), "no line text in the trail");
    app.cleanup().await;
}
