//! End-to-end tests: the real router against a real PostgreSQL cluster
//! started once per test run, each test with its own database prefix.

mod appointments;
mod auth;
mod bounds;
mod catalogue;
mod claims;
mod cli;
mod compliance;
mod consents;
mod documents;
mod embedded;
mod failed_writes;
mod helpers;
mod hostile;
mod hostile_tenant;
mod isolation;
mod medical_records;
mod metrics;
mod offboarding;
mod open_internet;
mod openapi;
mod ops;
mod patients;
mod practitioners;
mod provisioning;
mod proxies;
mod read_trail;
mod registration;
mod roles;
mod scale;
mod settings;
mod users;
mod web;
