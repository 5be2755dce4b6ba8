-- 002-core-tables.sql

CREATE TABLE users (
    id              serial PRIMARY KEY,
    email           text NOT NULL UNIQUE,
    password_hash   text,
    display_name    text NOT NULL,
    role            text NOT NULL DEFAULT 'staff',
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE patients (
    id              serial PRIMARY KEY,
    first_name      text NOT NULL,
    last_name       text NOT NULL,
    dob             date NOT NULL,
    email           text,
    phone           text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE appointments (
    id              serial PRIMARY KEY,
    patient_id      integer NOT NULL REFERENCES patients (id),
    provider_id     integer NOT NULL REFERENCES users (id),
    scheduled_at    timestamptz NOT NULL,
    duration_min    integer NOT NULL DEFAULT 15,
    notes           text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE payments (
    id              serial PRIMARY KEY,
    appointment_id  integer NOT NULL REFERENCES appointments (id),
    amount          numeric(10, 2) NOT NULL,
    due_on          date NOT NULL,
    paid_on         date,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE clinic_config (
    key             text PRIMARY KEY,
    value           jsonb NOT NULL
);

CREATE TRIGGER users_updated_at BEFORE UPDATE ON users FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER patients_updated_at BEFORE UPDATE ON patients FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER appointments_updated_at BEFORE UPDATE ON appointments FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER payments_updated_at BEFORE UPDATE ON payments FOR EACH ROW EXECUTE FUNCTION set_updated_at();
