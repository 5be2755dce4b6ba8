-- Who signed the prescription (free text until doctors get a table).
-- migrate:up
ALTER TABLE clinic.prescriptions ADD COLUMN prescriber text NOT NULL DEFAULT 'unknown';

-- migrate:down
ALTER TABLE clinic.prescriptions DROP COLUMN prescriber;
