//! The catalogue: `/products-services` and `/categories`, in the caller's
//! clinic database. Not patient data: not in the clinic's audit trail.

mod categories;
mod products;

use utoipa_axum::router::OpenApiRouter;

use super::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    products::router().merge(categories::router())
}
