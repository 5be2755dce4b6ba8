-- 003_users_and_patients.sql
-- Staff accounts and patients. "Referral" came over from the old intake app, which was written
-- with an ORM that quotes its identifiers; we kept its table and column names as they were.

SET search_path TO clinic, public;

CREATE TABLE users (
    id          bigserial PRIMARY KEY,
    email       text NOT NULL UNIQUE CHECK (email = normalize_email(email)),
    full_name   text NOT NULL,
    role        text NOT NULL CHECK (role IN ('admin', 'doctor', 'nurse', 'reception')),
    active      boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE patients (
    id                  bigserial PRIMARY KEY,
    mrn                 text NOT NULL UNIQUE,
    first_name          text NOT NULL,
    last_name           text NOT NULL,
    date_of_birth       date NOT NULL,
    email               text CHECK (email = normalize_email(email)),
    phone               text,
    primary_doctor_id   bigint REFERENCES users (id),
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);

COMMENT ON COLUMN patients.mrn IS 'Medical record number, HS-nnnn.';

CREATE TABLE "Referral" (
    id              bigserial PRIMARY KEY,
    "patientId"     bigint NOT NULL REFERENCES patients (id),
    "referredTo"    text NOT NULL,
    reason          text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE ("patientId", "referredTo")
);

CREATE TRIGGER users_set_updated_at
    BEFORE UPDATE ON users
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TRIGGER patients_set_updated_at
    BEFORE UPDATE ON patients
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
