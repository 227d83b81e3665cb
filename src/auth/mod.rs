//! Authentication and authorisation: password hashing, access tokens, the
//! role table, the login / refresh / logout flows, setting a password
//! (one-time links, change by the user), and the account check every token
//! passes.

pub mod accounts;
pub mod credentials;
pub mod jwt;
pub mod password;
pub mod roles;
pub mod session;
