//! What a request may set on a document, checked field by field (`items[i]`
//! fields named by index), and the priced lines it yields. References to
//! other rows (patient, catalogue) are checked against the database by
//! [`super::store::check_references`].

use chrono::{Datelike, NaiveDate};
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::amounts::Amounts;
use super::lifecycle::{DocumentStatus, DocumentType};
use crate::validation::schema::{Creatable, Create};
use crate::validation::{self as v, FieldErrors, Nested, Patch};

/// Lines a document may carry.
pub const MAX_ITEMS: usize = 200;

/// A create or update request; on update, absent fields are kept and
/// `items`, when given, replaces the whole list.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DocumentInput {
    /// `quote` or `invoice` (credit notes are made by the server); fixed once created.
    #[serde(default)]
    #[schema(value_type = DocumentType)]
    pub document_type: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Uuid)]
    pub patient_id: Patch<Uuid>,
    /// At most 200 lines.
    #[serde(default)]
    #[schema(value_type = Option<Vec<ItemInput>>, max_items = 200)]
    pub items: Patch<Vec<Nested<ItemInput>>>,
    /// `sent` issues a draft.
    #[serde(default)]
    #[schema(value_type = DocumentStatus)]
    pub status: Patch<String>,
    /// Between the years 1900 and 9999.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Date)]
    pub issue_date: Patch<String>,
    /// Between the years 1900 and 9999, not before `issueDate`.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Date)]
    pub due_date: Patch<String>,
    /// ISO 4217 code; default (and `null`) the clinic's currency.
    #[serde(default)]
    #[schema(schema_with = v::schema::currency_or_null)]
    pub currency: Patch<String>,
}

/// The body of a create, for the OpenAPI document.
pub type NewDocument = Create<DocumentInput>;

impl Creatable for DocumentInput {
    const CREATE_NAME: &'static str = "NewDocument";
    const REQUIRED: &'static [&'static str] = &["documentType", "patientId"];
}

/// One line as a request gives it.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ItemInput {
    /// A live row of the clinic's catalogue, if the line comes from it.
    pub product_service_id: Option<Uuid>,
    #[schema(schema_with = v::schema::text::<500>, required = true)]
    pub description: Option<String>,
    #[schema(value_type = i32, minimum = 1)]
    pub quantity: Option<i64>,
    /// Cents.
    #[schema(value_type = i64, minimum = 0)]
    pub unit_price_cents: Option<i64>,
    /// Basis points (2000 = 20 %).
    #[schema(value_type = i32, minimum = 0, maximum = 10_000)]
    pub vat_rate: Option<i64>,
}

/// A document's fields other than its lines, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub document_type: DocumentType,
    pub patient_id: Uuid,
    pub issue_date: Option<NaiveDate>,
    pub due_date: Option<NaiveDate>,
    pub currency: String,
}

/// A checked, priced line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub product_service_id: Option<Uuid>,
    pub description: String,
    pub quantity: i32,
    pub unit_price_cents: i64,
    pub vat_rate: i32,
    pub amounts: Amounts,
}

/// A document's lines and their sums.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lines {
    pub lines: Vec<Line>,
    pub totals: Amounts,
}

impl Lines {
    /// Sums `lines`; `None` when the totals do not fit in 64 bits.
    pub fn new(lines: Vec<Line>) -> Option<Lines> {
        let totals = Amounts::sum(lines.iter().map(|line| &line.amounts))?;
        Some(Lines { lines, totals })
    }
}

/// A request checked against the document it applies to.
#[derive(Debug)]
pub struct Checked {
    pub header: Header,
    /// The new lines, when the request gives them (always when creating).
    pub lines: Option<Lines>,
    /// The status asked for, if any.
    pub status: Option<DocumentStatus>,
}

impl DocumentInput {
    /// The names of the fields this request sets or clears (for the audit
    /// trail: names only, never values).
    pub fn present_fields(&self) -> Vec<&'static str> {
        crate::validation::present_names([
            ("documentType", !matches!(self.document_type, Patch::Absent)),
            ("patientId", !matches!(self.patient_id, Patch::Absent)),
            ("items", !matches!(self.items, Patch::Absent)),
            ("status", !matches!(self.status, Patch::Absent)),
            ("issueDate", !matches!(self.issue_date, Patch::Absent)),
            ("dueDate", !matches!(self.due_date, Patch::Absent)),
            ("currency", !matches!(self.currency, Patch::Absent)),
        ])
    }

    /// The status asked for; a bad value is a field error.
    pub fn status(&self) -> Result<Option<DocumentStatus>, FieldErrors> {
        match &self.status {
            Patch::Absent => Ok(None),
            Patch::Null => Err(FieldErrors::single("status", status_message())),
            Patch::Value(raw) => DocumentStatus::parse(raw)
                .map(Some)
                .ok_or_else(|| FieldErrors::single("status", status_message())),
        }
    }

    /// The patient this request names, to check it exists.
    pub fn patient_reference(&self) -> Option<Uuid> {
        match self.patient_id {
            Patch::Value(id) => Some(id),
            _ => None,
        }
    }

    /// The catalogue rows its items name, with the item's index.
    pub fn catalogue_references(&self) -> Vec<(usize, Uuid)> {
        match &self.items {
            Patch::Value(items) => items
                .iter()
                .enumerate()
                .filter_map(|(i, Nested(item))| item.product_service_id.map(|id| (i, id)))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Applies this request onto `current` (`None` when creating) and checks
    /// the result, adding to `errors` (which may already hold reference
    /// problems). `default_currency` is the clinic's.
    pub fn apply(
        self,
        current: Option<&Header>,
        default_currency: &str,
        mut errors: FieldErrors,
    ) -> Result<Checked, FieldErrors> {
        let e = &mut errors;
        let status = self.status().unwrap_or_else(|_| {
            e.add("status", status_message());
            None
        });
        let document_type = document_type(self.document_type, current, e);
        let patient_id = match (self.patient_id, current) {
            (Patch::Value(id), _) => Some(id),
            (Patch::Absent, Some(current)) => Some(current.patient_id),
            (Patch::Absent | Patch::Null, _) => {
                e.add("patientId", "is required");
                None
            }
        };
        if current.is_none()
            && !matches!(
                status,
                None | Some(DocumentStatus::Draft | DocumentStatus::Sent)
            )
        {
            e.add("status", "a new document is draft or sent");
        }
        let issue_date = self.issue_date.apply(
            current.and_then(|c| c.issue_date),
            document_date,
            "issueDate",
            e,
        );
        let due_date = self.due_date.apply(
            current.and_then(|c| c.due_date),
            document_date,
            "dueDate",
            e,
        );
        if let (Some(issue), Some(due)) = (issue_date, due_date) {
            if due < issue {
                e.add("dueDate", "must not be before issueDate");
            }
        }
        let currency = self
            .currency
            .apply(current.map(|c| c.currency.clone()), currency, "currency", e)
            .unwrap_or_else(|| default_currency.to_owned());
        let lines = match self.items {
            Patch::Absent if current.is_some() => None,
            Patch::Absent | Patch::Null => Some(Lines::default()),
            Patch::Value(items) => lines(items, e),
        };
        match (document_type, patient_id) {
            (Some(document_type), Some(patient_id)) if errors.is_empty() => Ok(Checked {
                header: Header {
                    document_type,
                    patient_id,
                    issue_date,
                    due_date,
                    currency,
                },
                lines,
                status,
            }),
            _ => Err(errors),
        }
    }
}

fn status_message() -> String {
    format!("must be one of: {}", DocumentStatus::ALL.join(", "))
}

fn document_type(
    raw: Patch<String>,
    current: Option<&Header>,
    e: &mut FieldErrors,
) -> Option<DocumentType> {
    let field = "documentType";
    match (raw, current) {
        (Patch::Absent, Some(current)) => Some(current.document_type),
        (Patch::Absent | Patch::Null, None) => {
            e.add(field, "is required");
            None
        }
        (Patch::Null, Some(_)) => {
            e.add(field, "cannot be changed");
            None
        }
        (Patch::Value(raw), current) => match DocumentType::parse(&raw) {
            Some(DocumentType::CreditNote) if current.is_none() => {
                e.add(
                    field,
                    "credit notes are made by the server when an invoice is cancelled",
                );
                None
            }
            Some(kind) if current.map_or(true, |c| c.document_type == kind) => Some(kind),
            Some(_) => {
                e.add(field, "cannot be changed");
                None
            }
            None => {
                e.add(field, "must be one of: quote, invoice");
                None
            }
        },
    }
}

/// A `YYYY-MM-DD` date between the years 1900 and 9999.
fn document_date(raw: String) -> Result<NaiveDate, String> {
    let date = v::date(raw)?;
    if (1900..=9999).contains(&date.year()) {
        Ok(date)
    } else {
        Err("must be between the years 1900 and 9999".into())
    }
}

/// Three letters (ISO 4217), upper-cased.
fn currency(raw: String) -> Result<String, String> {
    let value = raw.trim().to_ascii_uppercase();
    if value.len() == 3 && value.chars().all(|c| c.is_ascii_uppercase()) {
        Ok(value)
    } else {
        Err("must be a three-letter currency code such as EUR".into())
    }
}

fn lines(items: Vec<Nested<ItemInput>>, e: &mut FieldErrors) -> Option<Lines> {
    if items.len() > MAX_ITEMS {
        e.add("items", format!("must have at most {MAX_ITEMS} items"));
        return None;
    }
    let lines: Vec<Option<Line>> = items
        .into_iter()
        .enumerate()
        .map(|(i, Nested(item))| line(i, item, e))
        .collect();
    let lines: Vec<Line> = lines.into_iter().collect::<Option<_>>()?;
    let priced = Lines::new(lines);
    if priced.is_none() {
        e.add("items", "the document's total is too large");
    }
    priced
}

fn line(i: usize, item: ItemInput, e: &mut FieldErrors) -> Option<Line> {
    let field = |name: &str| format!("items[{i}].{name}");
    let description = v::required(item.description, v::text(500), &field("description"), e);
    let quantity = v::required(
        item.quantity,
        |q| {
            i32::try_from(q)
                .ok()
                .filter(|q| *q > 0)
                .ok_or_else(|| format!("must be a whole number from 1 to {}", i32::MAX))
        },
        &field("quantity"),
        e,
    );
    let unit_price_cents = v::required(
        item.unit_price_cents,
        |p| {
            if p >= 0 {
                Ok(p)
            } else {
                Err("must be 0 or more".to_owned())
            }
        },
        &field("unitPriceCents"),
        e,
    );
    let vat_rate = v::required(
        item.vat_rate,
        |r| {
            i32::try_from(r)
                .ok()
                .filter(|r| (0..=10_000).contains(r))
                .ok_or_else(|| "must be from 0 to 10000 basis points".to_owned())
        },
        &field("vatRate"),
        e,
    );
    let (description, quantity, unit_price_cents, vat_rate) =
        (description?, quantity?, unit_price_cents?, vat_rate?);
    let Some(amounts) = Amounts::of_line(quantity, unit_price_cents, vat_rate) else {
        e.add(&field("unitPriceCents"), "the line's amounts are too large");
        return None;
    };
    Some(Line {
        product_service_id: item.product_service_id,
        description,
        quantity,
        unit_price_cents,
        vat_rate,
        amounts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(json: serde_json::Value) -> DocumentInput {
        serde_json::from_value(json).unwrap()
    }

    fn fields(result: Result<Checked, FieldErrors>) -> Vec<String> {
        result
            .unwrap_err()
            .into_details()
            .into_iter()
            .map(|e| e.field)
            .collect()
    }

    #[test]
    fn create_prices_lines_and_defaults_currency_and_status() {
        let checked = input(serde_json::json!({
            "documentType": "quote", "patientId": Uuid::nil(),
            "items": [{"description": "Consultation", "quantity": 3, "unitPriceCents": 333, "vatRate": 550},
                      {"description": "Kit", "quantity": 1, "unitPriceCents": 10, "vatRate": 500}]
        }))
        .apply(None, "EUR", FieldErrors::default())
        .unwrap();
        assert_eq!(checked.header.currency, "EUR");
        assert_eq!(checked.status, None);
        let totals = checked.lines.unwrap().totals;
        assert_eq!(
            (totals.subtotal_cents, totals.tax_cents, totals.total_cents),
            (1009, 56, 1065)
        );
    }

    #[test]
    fn every_bad_field_is_named_with_its_item_index() {
        let found = fields(
            input(serde_json::json!({
                "documentType": "credit_note", "status": "paid", "currency": "euro",
                "issueDate": "2026-02-10", "dueDate": "2026-02-01",
                "items": [{"description": "ok", "quantity": 1, "unitPriceCents": 1, "vatRate": 0},
                          {"description": " ", "quantity": 0, "unitPriceCents": -1, "vatRate": 10001}]
            }))
            .apply(None, "EUR", FieldErrors::default()),
        );
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
        ] {
            assert!(
                found.contains(&field.to_owned()),
                "{field} not in {found:?}"
            );
        }
        assert!(!found.iter().any(|f| f.starts_with("items[0]")));
    }

    #[test]
    fn absurd_amounts_are_field_errors() {
        let huge = serde_json::json!({"description": "x", "quantity": 2, "unitPriceCents": i64::MAX, "vatRate": 0});
        let half = serde_json::json!({"description": "x", "quantity": 1, "unitPriceCents": i64::MAX / 2, "vatRate": 0});
        let base = |items| serde_json::json!({"documentType": "invoice", "patientId": Uuid::nil(), "items": items});
        assert_eq!(
            fields(input(base(serde_json::json!([huge]))).apply(
                None,
                "EUR",
                FieldErrors::default()
            )),
            vec!["items[0].unitPriceCents"]
        );
        assert_eq!(
            fields(input(base(serde_json::json!([half, half, half]))).apply(
                None,
                "EUR",
                FieldErrors::default()
            )),
            vec!["items"]
        );
    }

    #[test]
    fn update_keeps_absent_fields_and_refuses_a_type_change() {
        let current = Header {
            document_type: DocumentType::Invoice,
            patient_id: Uuid::nil(),
            issue_date: None,
            due_date: None,
            currency: "CHF".into(),
        };
        let checked = input(serde_json::json!({"dueDate": "2026-05-01"}))
            .apply(Some(&current), "EUR", FieldErrors::default())
            .unwrap();
        assert_eq!(checked.header.currency, "CHF");
        assert!(checked.lines.is_none());
        assert_eq!(checked.header.due_date, NaiveDate::from_ymd_opt(2026, 5, 1));
        assert_eq!(
            fields(input(serde_json::json!({"documentType": "quote"})).apply(
                Some(&current),
                "EUR",
                FieldErrors::default()
            )),
            vec!["documentType"]
        );
        let cleared = input(serde_json::json!({"items": null, "currency": null}))
            .apply(Some(&current), "EUR", FieldErrors::default())
            .unwrap();
        assert_eq!(cleared.lines, Some(Lines::default()));
        assert_eq!(cleared.header.currency, "EUR");
    }
}
