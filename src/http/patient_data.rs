//! Pieces shared by the patient-data resources (appointments, medical
//! records, consents): the list query filtered by patient, and the 422 for
//! an id in a body that names no live row of the clinic.

use serde::Deserialize;
use serde_json::json;
use utoipa::IntoParams;
use uuid::Uuid;

use super::error::ApiError;
use super::list::ListQuery;
use crate::clinic::audit::{Action, Entry};
use crate::clinic::references::UNKNOWN;
use crate::clinic::Page;
use crate::validation::FieldErrors;

/// `?patientId=&limit=&offset=`
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PatientQuery {
    /// Only this patient's rows.
    pub patient_id: Option<Uuid>,
    /// 1 to 100, default 20.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// 0 to 100000, default 0.
    #[param(minimum = 0, maximum = 100_000)]
    pub offset: Option<i64>,
}

impl PatientQuery {
    pub fn page(&self) -> Result<Page, ApiError> {
        page(self.limit, self.offset)
    }

    /// The audit event of a list read with this query (naming the patient
    /// when the list is one patient's).
    pub fn audit_entry(&self, resource: &'static str, page: Page) -> Entry {
        let entry = Entry::new(Action::List, resource).details(json!({
            "limit": page.limit, "offset": page.offset, "patientId": self.patient_id,
        }));
        match self.patient_id {
            Some(patient) => entry.patient(patient),
            None => entry,
        }
    }
}

/// The shared limit and offset rules (400 when out of range).
pub fn page(limit: Option<i64>, offset: Option<i64>) -> Result<Page, ApiError> {
    ListQuery {
        limit,
        offset,
        search: None,
    }
    .page()
}

/// The 422 naming `field` for an id that names no live row of the clinic
/// (also for a foreign key the database refused, should the row vanish
/// after it was checked).
pub fn unknown(field: &'static str) -> impl FnOnce() -> ApiError {
    move || FieldErrors::single(field, UNKNOWN).into()
}
