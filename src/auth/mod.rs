//! Authentication and authorisation: password hashing, access tokens, the
//! role table, the login / refresh / logout flows, and the account check
//! every token passes.

pub mod accounts;
pub mod jwt;
pub mod password;
pub mod roles;
pub mod session;
