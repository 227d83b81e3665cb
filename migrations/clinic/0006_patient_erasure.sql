-- When a patient's identifying data was erased (GDPR article 17). An erased
-- patient keeps only its id, so that the audit trail's references stay
-- meaningful without naming anyone.
ALTER TABLE patients ADD COLUMN erased_at timestamptz;
