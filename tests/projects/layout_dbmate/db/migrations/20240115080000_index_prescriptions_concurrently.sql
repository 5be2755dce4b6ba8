-- migrate:up transaction:false
CREATE INDEX CONCURRENTLY prescriptions_patient_day
    ON clinic.prescriptions (patient_id, prescribed DESC);

-- migrate:down transaction:false
DROP INDEX CONCURRENTLY clinic.prescriptions_patient_day;
