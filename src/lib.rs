//! MedicalPro: a backend for multi-clinic medical practices, where every
//! clinic's data lives in its own PostgreSQL database reached with its own
//! role, and a central database holds only clinics, staff and platform audit.

pub mod app;
pub mod auth;
pub mod central;
pub mod cli;
pub mod clinic;
pub mod coherence;
pub mod compliance;
pub mod config;
pub mod crypto;
pub mod embedded;
pub mod http;
pub mod master_keys;
pub mod migrations;
pub mod ops;
pub mod platform;
pub mod tenancy;
pub mod validation;
