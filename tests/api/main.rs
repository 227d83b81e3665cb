//! End-to-end tests: the real router against a real PostgreSQL cluster
//! started once per test run, each test with its own database prefix.

mod auth;
mod catalogue;
mod compliance;
mod documents;
mod embedded;
mod helpers;
mod isolation;
mod openapi;
mod patients;
mod practitioners;
mod provisioning;
mod settings;
mod users;
