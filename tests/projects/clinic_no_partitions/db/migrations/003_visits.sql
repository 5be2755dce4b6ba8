-- 003_visits.sql
-- visit_reasons is reference data (db/seeds/001_reference.sql).

CREATE TABLE clinic.visit_reasons (
    code    text PRIMARY KEY,
    label   text NOT NULL
);

CREATE TABLE clinic.visits (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    patient_id      uuid NOT NULL REFERENCES clinic.patients (id),
    clinician_id    uuid NOT NULL REFERENCES clinic.staff (id),
    reason_code     text NOT NULL REFERENCES clinic.visit_reasons (code),
    scheduled_for   timestamptz NOT NULL,
    status          clinic.visit_status NOT NULL DEFAULT 'scheduled',
    summary         text,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX visits_patient_idx ON clinic.visits (patient_id, scheduled_for);
