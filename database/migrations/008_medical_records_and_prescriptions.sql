-- 008_medical_records_and_prescriptions.sql
-- Creates clinic.medical_records (a doctor's note about a patient, optionally tied to an
-- appointment) and clinic.prescriptions (medication issued under a medical record), with their
-- set_updated_at_<table> triggers. clinic_id is carried on both tables so that row-level
-- security can filter them without joins; composite foreign keys keep it consistent.

CREATE TABLE clinic.medical_records (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    clinic_id       uuid NOT NULL,
    patient_id      uuid NOT NULL,
    doctor_id       uuid NOT NULL,
    appointment_id  uuid,
    diagnosis       text,
    notes           text NOT NULL,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT medical_records_patient_fk FOREIGN KEY (clinic_id, patient_id)
        REFERENCES clinic.patients (clinic_id, id),
    CONSTRAINT medical_records_doctor_fk FOREIGN KEY (clinic_id, doctor_id)
        REFERENCES clinic.doctors (clinic_id, id),
    CONSTRAINT medical_records_appointment_fk FOREIGN KEY (clinic_id, appointment_id)
        REFERENCES clinic.appointments (clinic_id, id),
    CONSTRAINT medical_records_clinic_id_id_key UNIQUE (clinic_id, id)
);

CREATE INDEX medical_records_patient_recorded_idx ON clinic.medical_records (patient_id, recorded_at);
CREATE INDEX medical_records_appointment_idx ON clinic.medical_records (appointment_id);

CREATE TRIGGER set_updated_at_medical_records
    BEFORE UPDATE ON clinic.medical_records
    FOR EACH ROW EXECUTE FUNCTION clinic.set_updated_at();

CREATE TABLE clinic.prescriptions (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    clinic_id          uuid NOT NULL,
    medical_record_id  uuid NOT NULL,
    patient_id         uuid NOT NULL,
    doctor_id          uuid NOT NULL,
    medication         text NOT NULL CHECK (btrim(medication) <> ''),
    dosage             text NOT NULL,
    frequency          text NOT NULL,
    duration_days      integer CHECK (duration_days > 0),
    instructions       text,
    prescribed_at      timestamptz NOT NULL DEFAULT now(),
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT prescriptions_medical_record_fk FOREIGN KEY (clinic_id, medical_record_id)
        REFERENCES clinic.medical_records (clinic_id, id),
    CONSTRAINT prescriptions_patient_fk FOREIGN KEY (clinic_id, patient_id)
        REFERENCES clinic.patients (clinic_id, id),
    CONSTRAINT prescriptions_doctor_fk FOREIGN KEY (clinic_id, doctor_id)
        REFERENCES clinic.doctors (clinic_id, id)
);

CREATE INDEX prescriptions_patient_prescribed_idx ON clinic.prescriptions (patient_id, prescribed_at);
CREATE INDEX prescriptions_medical_record_idx ON clinic.prescriptions (medical_record_id);

CREATE TRIGGER set_updated_at_prescriptions
    BEFORE UPDATE ON clinic.prescriptions
    FOR EACH ROW EXECUTE FUNCTION clinic.set_updated_at();
