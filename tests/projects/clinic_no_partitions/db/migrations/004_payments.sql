-- 004_payments.sql
-- Private fees (travel vaccinations, medical reports); NHS work is not billed here.

CREATE TABLE clinic.payments (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    visit_id    uuid REFERENCES clinic.visits (id),
    patient_id  uuid NOT NULL REFERENCES clinic.patients (id),
    amount      numeric(10, 2) NOT NULL CHECK (amount > 0),
    description text NOT NULL,
    paid_at     timestamptz NOT NULL DEFAULT now()
);
