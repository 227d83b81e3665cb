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

/// The process's allocator. Each password hash takes a 19 MiB block for
/// its whole run ([`auth::password`]); mimalloc serves a block that large
/// from its own mapping and returns it to the system once freed, so the
/// bound on hashes in flight bounds memory too. glibc's malloc, by default,
/// raises its mapping threshold to the largest block freed so far: after
/// the first hash, later ones would come from the heap, where small
/// allocations made in between keep the freed space from being reused or
/// returned.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
