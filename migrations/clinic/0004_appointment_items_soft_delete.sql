-- Appointment items are removed by soft delete, like every row a user can delete.
ALTER TABLE appointment_items ADD COLUMN deleted_at timestamptz;
