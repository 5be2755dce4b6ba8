-- 0003 treatment sessions, invoices, payments
-- treatment_catalogue is reference data (seeds/001_system_seed.sql).

CREATE TABLE clinic.treatment_catalogue (
    code            text PRIMARY KEY,
    description     text NOT NULL,
    minutes         integer NOT NULL CHECK (minutes > 0),
    price_cents     integer NOT NULL CHECK (price_cents >= 0)
);

CREATE TABLE clinic.treatment_sessions (
    session_id      integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    therapist_id    integer NOT NULL REFERENCES clinic.therapists,
    patient_id      integer NOT NULL REFERENCES clinic.patients,
    treatment_code  text NOT NULL REFERENCES clinic.treatment_catalogue,
    starts_at       timestamptz NOT NULL,
    ends_at         timestamptz NOT NULL,
    attended        boolean,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (ends_at > starts_at),
    CONSTRAINT treatment_sessions_no_double_booking
        EXCLUDE USING gist (therapist_id WITH =, tstzrange(starts_at, ends_at) WITH &&)
);

CREATE TABLE clinic.invoices (
    invoice_id      integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_id      integer NOT NULL UNIQUE REFERENCES clinic.treatment_sessions,
    total_cents     integer NOT NULL CHECK (total_cents >= 0),
    issued_on       date NOT NULL DEFAULT current_date,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE clinic.payments (
    payment_id      integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    invoice_id      integer NOT NULL REFERENCES clinic.invoices,
    amount_cents    integer NOT NULL CHECK (amount_cents > 0),
    paid_via        text NOT NULL CHECK (paid_via IN ('card', 'transfer', 'insurer')),
    received_at     timestamptz NOT NULL DEFAULT now()
);
