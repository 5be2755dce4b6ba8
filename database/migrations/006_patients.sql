-- 006_patients.sql
-- Creates clinic.patients (registered at one clinic, optionally linked to a patient portal
-- account in clinic.users), its trigram index for name search, and set_updated_at_patients.
-- UNIQUE (clinic_id, id) lets dependent tables reference (clinic_id, patient_id), so a record
-- can never belong to a patient of another clinic.

CREATE TABLE clinic.patients (
    id                     uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    clinic_id              uuid NOT NULL REFERENCES clinic.clinics (id),
    user_id                uuid UNIQUE REFERENCES clinic.users (id),
    medical_record_number  text NOT NULL CHECK (btrim(medical_record_number) <> ''),
    full_name              text NOT NULL CHECK (btrim(full_name) <> ''),
    date_of_birth          date NOT NULL,
    email                  clinic.email_address,
    phone                  text,
    address                text,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT patients_clinic_mrn_key UNIQUE (clinic_id, medical_record_number),
    CONSTRAINT patients_clinic_id_id_key UNIQUE (clinic_id, id)
);

COMMENT ON TABLE clinic.patients IS 'Patients (personal data). Row-level security for clinic_app: see 017_row_level_security.sql.';

CREATE INDEX patients_full_name_trgm_idx ON clinic.patients USING gin (full_name gin_trgm_ops);

CREATE TRIGGER set_updated_at_patients
    BEFORE UPDATE ON clinic.patients
    FOR EACH ROW EXECUTE FUNCTION clinic.set_updated_at();
