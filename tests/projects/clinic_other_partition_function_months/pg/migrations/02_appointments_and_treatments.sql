-- 02_appointments_and_treatments.sql
-- The treatment price list is part of the schema here (bands are set nationally and change
-- with a migration, not with a seed).

CREATE TABLE clinic.treatments (
    code        varchar(10) PRIMARY KEY,
    name        varchar(120) NOT NULL,
    band        smallint NOT NULL CHECK (band BETWEEN 1 AND 3),
    fee_pence   integer NOT NULL CHECK (fee_pence >= 0)
);

INSERT INTO clinic.treatments (code, name, band, fee_pence) VALUES
    ('EXAM', 'Examination', 1, 2760),
    ('SCALE', 'Scale and polish', 1, 2760),
    ('FILL', 'Filling', 2, 7560),
    ('RCT', 'Root canal treatment', 2, 7560),
    ('CROWN', 'Crown', 3, 32760);

CREATE TABLE clinic.appointments (
    id          serial PRIMARY KEY,
    dentist_id  integer NOT NULL REFERENCES clinic.dentists (id),
    patient_id  integer NOT NULL REFERENCES clinic.patients (id),
    starts_at   timestamptz NOT NULL,
    minutes     smallint NOT NULL DEFAULT 20 CHECK (minutes > 0),
    status      varchar(12) NOT NULL DEFAULT 'booked'
                    CHECK (status IN ('booked', 'attended', 'failed', 'cancelled')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (dentist_id, starts_at)
);

CREATE TABLE clinic.treatment_items (
    id              serial PRIMARY KEY,
    appointment_id  integer NOT NULL REFERENCES clinic.appointments (id) ON DELETE CASCADE,
    treatment_code  varchar(10) NOT NULL REFERENCES clinic.treatments (code),
    tooth           varchar(3),
    notes           text
);
