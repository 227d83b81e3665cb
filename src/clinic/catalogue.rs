//! The clinic's catalogue: products and services it sells, and the
//! categories that group them (a product can be in several).

pub mod categories;
pub mod products;
