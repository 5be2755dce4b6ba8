-- 005_doctors_and_staff.sql
-- Creates clinic.doctors and clinic.staff: the professional profile of a clinic.users account,
-- one profile per user, in one clinic, with their set_updated_at_<table> triggers.
-- doctors has UNIQUE (clinic_id, id) so that later tables can reference (clinic_id, doctor_id)
-- and thereby guarantee that an appointment's doctor works in the appointment's clinic.

CREATE TABLE clinic.doctors (
    id                     uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    clinic_id              uuid NOT NULL REFERENCES clinic.clinics (id),
    user_id                uuid NOT NULL UNIQUE REFERENCES clinic.users (id),
    specialty              text NOT NULL CHECK (btrim(specialty) <> ''),
    license_number         text NOT NULL UNIQUE CHECK (btrim(license_number) <> ''),
    bio                    text,
    is_accepting_patients  boolean NOT NULL DEFAULT true,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT doctors_clinic_id_id_key UNIQUE (clinic_id, id)
);

CREATE TRIGGER set_updated_at_doctors
    BEFORE UPDATE ON clinic.doctors
    FOR EACH ROW EXECUTE FUNCTION clinic.set_updated_at();

CREATE TABLE clinic.staff (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    clinic_id   uuid NOT NULL REFERENCES clinic.clinics (id),
    user_id     uuid NOT NULL UNIQUE REFERENCES clinic.users (id),
    job_title   text NOT NULL CHECK (btrim(job_title) <> ''),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX staff_clinic_id_idx ON clinic.staff (clinic_id);

CREATE TRIGGER set_updated_at_staff
    BEFORE UPDATE ON clinic.staff
    FOR EACH ROW EXECUTE FUNCTION clinic.set_updated_at();
