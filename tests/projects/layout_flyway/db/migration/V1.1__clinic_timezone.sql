ALTER TABLE clinic.clinics ADD COLUMN time_zone text NOT NULL DEFAULT 'Europe/Paris';
