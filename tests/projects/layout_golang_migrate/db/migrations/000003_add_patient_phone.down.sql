ALTER TABLE clinic.patients DROP COLUMN IF EXISTS phone;
