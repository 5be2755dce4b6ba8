ALTER TABLE clinic.patients ADD COLUMN phone text;
ALTER TABLE clinic.patients ADD CONSTRAINT patients_phone_digits CHECK (phone ~ '^\+?[0-9 ]+$');
