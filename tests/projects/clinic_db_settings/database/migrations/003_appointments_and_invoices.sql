-- 003_appointments_and_invoices.sql

CREATE TABLE clinic.specialties (
    code    text PRIMARY KEY,
    name    text NOT NULL
);

CREATE TABLE clinic.appointments (
    id          bigserial PRIMARY KEY,
    clinic_id   integer NOT NULL REFERENCES clinic.clinics,
    patient_id  bigint NOT NULL REFERENCES clinic.patients,
    specialty   text NOT NULL REFERENCES clinic.specialties,
    at          timestamptz NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE clinic.invoices (
    id              bigserial PRIMARY KEY,
    clinic_id       integer NOT NULL REFERENCES clinic.clinics,
    appointment_id  bigint NOT NULL REFERENCES clinic.appointments,
    amount_cents    integer NOT NULL CHECK (amount_cents > 0),
    paid            boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TRIGGER appointments_tenant BEFORE INSERT OR UPDATE ON clinic.appointments
    FOR EACH ROW EXECUTE FUNCTION clinic.enforce_tenant();
CREATE TRIGGER invoices_tenant BEFORE INSERT OR UPDATE ON clinic.invoices
    FOR EACH ROW EXECUTE FUNCTION clinic.enforce_tenant();

GRANT SELECT ON clinic.clinics, clinic.specialties TO clinic_api;
GRANT SELECT, INSERT, UPDATE ON clinic.patients, clinic.appointments, clinic.invoices TO clinic_api;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA clinic TO clinic_api;
