//! List parameters shared by every collection: `?limit=` (default 20, at
//! most 100), `?offset=` (default 0) and `?search=`.

use serde::Deserialize;
use utoipa::IntoParams;

use super::error::ApiError;
use super::extract::Pagination;
use crate::clinic::Page;

pub const DEFAULT_LIMIT: i64 = 20;
pub const MAX_LIMIT: i64 = 100;

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// 1 to 100, default 20.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// Default 0.
    #[param(minimum = 0)]
    pub offset: Option<i64>,
    /// Free text.
    pub search: Option<String>,
}

impl ListQuery {
    pub fn page(&self) -> Result<Page, ApiError> {
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        let offset = self.offset.unwrap_or(0);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::BadRequest(format!(
                "limit must be between 1 and {MAX_LIMIT}"
            )));
        }
        if offset < 0 {
            return Err(ApiError::BadRequest("offset must not be negative".into()));
        }
        Ok(Page { limit, offset })
    }

    /// The search text, if any is left after trimming.
    pub fn search(&self) -> Option<&str> {
        self.search
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
    }
}

impl Page {
    pub fn with_total(self, total: i64) -> Pagination {
        Pagination {
            total,
            limit: self.limit,
            offset: self.offset,
        }
    }
}
