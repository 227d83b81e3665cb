-- A clinic password being rotated in (see src/ops/keys.rs): sealed like
-- db_password_sealed, set before the role's password is changed and moved
-- into db_password_sealed once it is, so that a server finding either
-- value can always log in, and an interrupted rotation is finished by
-- running it again.
ALTER TABLE companies ADD COLUMN db_password_next_sealed bytea;

-- The clinic's key for the erasure ledger's keyed hashes, sealed with the
-- master key (the clinic id as associated data). Made at the first erasure.
ALTER TABLE companies ADD COLUMN erasure_key_sealed bytea;

-- Every GDPR erasure, without personal data: the clinic and an HMAC-SHA-256
-- of the patient id under the clinic's erasure key. A restore of a backup
-- taken before an erasure erases the patient again before the clinic serves
-- (see src/central/erasures.rs).
CREATE TABLE erasures (
    company_id   uuid NOT NULL REFERENCES companies (id),
    patient_key  bytea NOT NULL,
    erased_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (company_id, patient_key)
);

-- A clinic closed by `medicalpro clinic close` (suspended and exported):
-- its database and roles are destroyed once this time has passed (see
-- src/ops/offboarding.rs); reactivating it cancels the closure.
ALTER TABLE companies ADD COLUMN destroy_after timestamptz;
