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

/// What a clinic route touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Patients,
    Appointments,
    Consents,
    Documents,
    MedicalRecords,
    Practitioners,
    ProductsServices,
    Categories,
    ConsentTemplates,
    ClinicSettings,
    Users,
    Audit,
}

impl Resource {
    pub const ALL: [Resource; 12] = [
        Resource::Patients,
        Resource::Appointments,
        Resource::Consents,
        Resource::Documents,
        Resource::MedicalRecords,
        Resource::Practitioners,
        Resource::ProductsServices,
        Resource::Categories,
        Resource::ConsentTemplates,
        Resource::ClinicSettings,
        Resource::Users,
        Resource::Audit,
    ];
}

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
        for resource in Resource::ALL {
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
