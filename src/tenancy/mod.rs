//! Tenancy: one database per clinic, owned by a role that cannot log in and
//! reached with a login role that owns nothing (`ddl` makes both and says
//! who may do what). Provisioning makes them,
//! the template database speeds provisioning up, the pool registry opens
//! connections to them under one budget, and the state cache says
//! whether a clinic may be served; the audit sealer chains the events that
//! requests leave pending. Requests reach a clinic database only
//! through `http::tenant::Clinic`, built from a verified token.

pub mod audit_sealer;
pub mod ddl;
pub mod naming;
pub mod pods;
pub mod pools;
pub mod provisioning;
pub mod read_trail;
pub mod sizes;
pub mod state;
pub mod template;
