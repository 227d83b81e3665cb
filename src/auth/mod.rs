//! Authentication and authorisation: password hashing, access tokens, the
//! role table, and the login / refresh / logout flows.

pub mod jwt;
pub mod password;
pub mod roles;
pub mod session;
