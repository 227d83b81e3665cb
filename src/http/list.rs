//! List parameters shared by every collection: `?limit=` (default 20, at
//! most 100), `?offset=` (default 0, at most 100000: deeper pages cost the
//! database every row skipped) and `?search=` (at most 100 characters).

use serde::Deserialize;
use utoipa::IntoParams;

use super::error::ApiError;
use super::extract::Pagination;
use crate::clinic::Page;
use crate::validation::FieldErrors;

pub const DEFAULT_LIMIT: i64 = 20;
pub const MAX_LIMIT: i64 = 100;
pub const MAX_OFFSET: i64 = 100_000;
pub const MAX_SEARCH_CHARS: usize = 100;

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// 1 to 100, default 20.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// 0 to 100000, default 0.
    #[param(minimum = 0, maximum = 100_000)]
    pub offset: Option<i64>,
    /// Free text, at most 100 characters.
    #[param(max_length = 100)]
    pub search: Option<String>,
}

impl ListQuery {
    /// The page asked for: limit or offset out of range is a 400, a search
    /// text too long a 422 naming `search`.
    pub fn page(&self) -> Result<Page, ApiError> {
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        let offset = self.offset.unwrap_or(0);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::BadRequest(format!(
                "limit must be between 1 and {MAX_LIMIT}"
            )));
        }
        if !(0..=MAX_OFFSET).contains(&offset) {
            return Err(ApiError::BadRequest(format!(
                "offset must be between 0 and {MAX_OFFSET}"
            )));
        }
        if self
            .search
            .as_deref()
            .is_some_and(|search| search.chars().count() > MAX_SEARCH_CHARS)
        {
            return Err(FieldErrors::single(
                "search",
                format!("must be at most {MAX_SEARCH_CHARS} characters"),
            )
            .into());
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
