-- 004_clinics_and_users.sql
-- Creates clinic.clinics (the tenants) and clinic.users (every account: admin, doctor,
-- patient, staff), with their set_updated_at_<table> triggers.
-- A user belongs to one clinic; only an admin may have no clinic (platform administrator).
-- users.email is unique, case-insensitively (citext).

CREATE TABLE clinic.clinics (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text NOT NULL CHECK (btrim(name) <> ''),
    slug        citext NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$'),
    timezone    text NOT NULL DEFAULT 'UTC',
    email       clinic.email_address,
    phone       text,
    address     text,
    is_active   boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE clinic.clinics IS 'A clinic (tenant). Row-level security on patient data is keyed on clinic id.';

CREATE TRIGGER set_updated_at_clinics
    BEFORE UPDATE ON clinic.clinics
    FOR EACH ROW EXECUTE FUNCTION clinic.set_updated_at();

CREATE TABLE clinic.users (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    clinic_id      uuid REFERENCES clinic.clinics (id),
    email          clinic.email_address NOT NULL UNIQUE,
    role           clinic.user_role NOT NULL,
    full_name      text NOT NULL CHECK (btrim(full_name) <> ''),
    phone          text,
    password_hash  text,
    is_active      boolean NOT NULL DEFAULT true,
    last_login_at  timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_clinic_required CHECK (role = 'admin' OR clinic_id IS NOT NULL)
);

COMMENT ON TABLE clinic.users IS 'Accounts. password_hash is never copied into the audit trail.';

CREATE INDEX users_clinic_id_idx ON clinic.users (clinic_id);

CREATE TRIGGER set_updated_at_users
    BEFORE UPDATE ON clinic.users
    FOR EACH ROW EXECUTE FUNCTION clinic.set_updated_at();
