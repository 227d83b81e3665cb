//! Roles and the SPEC's permission table, in one place: every clinic route
//! names its [`Resource`] and the router enforces [`Role::may`] before the
//! handler runs.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type, ToSchema)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum Role {
    SuperAdmin,
    Admin,
    Doctor,
    Secretary,
    Readonly,
}

/// The resources, written once: the [`Resource`] enum, [`Resource::ALL`],
/// and a marker type per resource (in [`markers`]) that a handler names in
/// its signature, audited or not.
macro_rules! resources {
    (audited: $($audited:ident),* ; unaudited: $($unaudited:ident),* $(;)?) => {
        /// What a clinic route touches.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Resource {
            $($audited,)*
            $($unaudited,)*
        }

        impl Resource {
            pub const ALL: &'static [Resource] =
                &[$(Resource::$audited,)* $(Resource::$unaudited,)*];
        }

        /// One type per resource, for the type of a route's clinic access.
        pub mod markers {
            use super::{AuditedResource, ClinicResource, Resource, UnauditedResource};
            $(
                #[doc = concat!("Marker for [`Resource::", stringify!($audited), "`], audited.")]
                pub struct $audited;
                impl ClinicResource for $audited {
                    const RESOURCE: Resource = Resource::$audited;
                }
                impl AuditedResource for $audited {}
            )*
            $(
                #[doc = concat!("Marker for [`Resource::", stringify!($unaudited), "`].")]
                pub struct $unaudited;
                impl ClinicResource for $unaudited {
                    const RESOURCE: Resource = Resource::$unaudited;
                }
                impl UnauditedResource for $unaudited {}
            )*
        }
    };
}

resources! {
    audited: Patients, Appointments, Consents, Documents, MedicalRecords, ConsentTemplates;
    unaudited: Practitioners, ProductsServices, Categories, ClinicSettings, Users, Audit;
}

/// The resource a route touches, named once per handler in its signature.
pub trait ClinicResource: Send + Sync + 'static {
    const RESOURCE: Resource;
}

/// A resource every change of which is recorded in the audit trail: its
/// handlers write only through `http::tenant::AuditedTransaction`, which
/// cannot commit without its event.
pub trait AuditedResource: ClinicResource {}

/// A resource whose changes the trail does not record (the clinic's
/// staff directory, catalogue, settings, and the trail itself).
pub trait UnauditedResource: ClinicResource {}

/// Reading (GET) or changing (anything else).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Read,
    Write,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    None,
    Read,
    ReadWrite,
}

impl Role {
    pub const CLINIC_ROLES: [Role; 4] =
        [Role::Admin, Role::Doctor, Role::Secretary, Role::Readonly];

    /// The SPEC's table, section 3 "Staff and roles".
    pub fn access(self, resource: Resource) -> Access {
        use Resource::*;
        use Role::*;
        match (self, resource) {
            (SuperAdmin, _) => Access::None,
            (Admin, Audit) => Access::Read,
            (Admin, _) => Access::ReadWrite,
            (Doctor | Secretary, Patients | Appointments | Consents | Documents) => {
                Access::ReadWrite
            }
            (Readonly, Patients | Appointments | Consents | Documents) => Access::Read,
            (Doctor, MedicalRecords) => Access::ReadWrite,
            (Secretary | Readonly, MedicalRecords) => Access::None,
            (
                Doctor | Secretary | Readonly,
                Practitioners | ProductsServices | Categories | ConsentTemplates | ClinicSettings,
            ) => Access::Read,
            (Doctor | Secretary | Readonly, Users | Audit) => Access::None,
        }
    }

    pub fn may(self, resource: Resource, operation: Operation) -> bool {
        matches!(
            (self.access(resource), operation),
            (Access::ReadWrite, _) | (Access::Read, Operation::Read)
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::SuperAdmin => "super_admin",
            Role::Admin => "admin",
            Role::Doctor => "doctor",
            Role::Secretary => "secretary",
            Role::Readonly => "readonly",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_admins_and_doctors_see_medical_records() {
        assert!(Role::Doctor.may(Resource::MedicalRecords, Operation::Write));
        assert!(!Role::Secretary.may(Resource::MedicalRecords, Operation::Read));
        assert!(!Role::Readonly.may(Resource::MedicalRecords, Operation::Read));
    }

    #[test]
    fn readonly_never_writes_and_super_admin_reaches_nothing() {
        for &resource in Resource::ALL {
            assert!(!Role::Readonly.may(resource, Operation::Write));
            assert!(!Role::SuperAdmin.may(resource, Operation::Read));
        }
    }

    #[test]
    fn audit_is_read_only_even_for_admins() {
        assert!(Role::Admin.may(Resource::Audit, Operation::Read));
        assert!(!Role::Admin.may(Resource::Audit, Operation::Write));
    }
}
