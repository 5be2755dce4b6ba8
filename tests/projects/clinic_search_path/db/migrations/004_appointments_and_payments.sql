-- 004_appointments_and_payments.sql
-- Visits and what they cost. appointment_types and clinic_settings are reference data loaded by
-- db/seeds/system.sql.

SET search_path TO clinic, public;

CREATE TABLE appointment_types (
    code                text PRIMARY KEY,
    label               text NOT NULL,
    duration_minutes    integer NOT NULL CHECK (duration_minutes > 0)
);

CREATE TABLE clinic_settings (
    key     text PRIMARY KEY,
    value   text NOT NULL
);

CREATE TABLE appointments (
    id                  bigserial PRIMARY KEY,
    patient_id          bigint NOT NULL REFERENCES patients (id),
    doctor_id           bigint NOT NULL REFERENCES users (id),
    appointment_type    text NOT NULL REFERENCES appointment_types (code),
    starts_at           timestamptz NOT NULL,
    ends_at             timestamptz NOT NULL,
    status              text NOT NULL DEFAULT 'booked'
                            CHECK (status IN ('booked', 'completed', 'cancelled', 'no_show')),
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CHECK (ends_at > starts_at)
);

CREATE INDEX appointments_doctor_starts_idx ON appointments (doctor_id, starts_at);

CREATE TABLE payments (
    id              bigserial PRIMARY KEY,
    appointment_id  bigint NOT NULL REFERENCES appointments (id),
    amount_cents    integer NOT NULL CHECK (amount_cents > 0),
    currency        char(3) NOT NULL DEFAULT 'EUR',
    method          text NOT NULL CHECK (method IN ('card', 'cash', 'insurance')),
    status          text NOT NULL DEFAULT 'paid' CHECK (status IN ('paid', 'refunded')),
    paid_at         timestamptz NOT NULL DEFAULT now(),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TRIGGER appointments_set_updated_at
    BEFORE UPDATE ON appointments
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TRIGGER payments_set_updated_at
    BEFORE UPDATE ON payments
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
