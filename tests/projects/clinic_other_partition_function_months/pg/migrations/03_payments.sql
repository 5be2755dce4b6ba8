-- 03_payments.sql

CREATE TABLE clinic.payments (
    id              serial PRIMARY KEY,
    patient_id      integer NOT NULL REFERENCES clinic.patients (id),
    appointment_id  integer REFERENCES clinic.appointments (id),
    amount_pence    integer NOT NULL CHECK (amount_pence <> 0),
    method          varchar(10) NOT NULL CHECK (method IN ('card', 'cash', 'plan')),
    taken_at        timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX payments_patient_idx ON clinic.payments (patient_id);
