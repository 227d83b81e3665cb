//! End-to-end tests: the real router against a real PostgreSQL cluster
//! started once per test run, each test with its own database prefix.

mod auth;
mod embedded;
mod helpers;
mod isolation;
mod openapi;
mod patients;
mod provisioning;
mod scale;
