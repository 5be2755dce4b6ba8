-- 007_appointments.sql
-- Creates clinic.appointments and set_updated_at_appointments.
-- The doctor and the patient must both belong to the appointment's clinic (composite foreign
-- keys). A doctor cannot have two overlapping appointments that are not cancelled
-- (exclusion constraint appointments_no_double_booking, SQLSTATE 23P01 on violation); the
-- booking schema (014_booking.sql) adds the same guarantee for slots and bookings.

CREATE TABLE clinic.appointments (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    clinic_id   uuid NOT NULL,
    doctor_id   uuid NOT NULL,
    patient_id  uuid NOT NULL,
    starts_at   timestamptz NOT NULL,
    ends_at     timestamptz NOT NULL,
    status      clinic.appointment_status NOT NULL DEFAULT 'scheduled',
    reason      text,
    notes       text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT appointments_time_order CHECK (ends_at > starts_at),
    CONSTRAINT appointments_doctor_fk FOREIGN KEY (clinic_id, doctor_id)
        REFERENCES clinic.doctors (clinic_id, id),
    CONSTRAINT appointments_patient_fk FOREIGN KEY (clinic_id, patient_id)
        REFERENCES clinic.patients (clinic_id, id),
    CONSTRAINT appointments_clinic_id_id_key UNIQUE (clinic_id, id),
    CONSTRAINT appointments_no_double_booking EXCLUDE USING gist (
        doctor_id WITH =,
        tstzrange(starts_at, ends_at) WITH &&
    ) WHERE (status <> 'cancelled')
);

CREATE INDEX appointments_patient_starts_idx ON clinic.appointments (patient_id, starts_at);
CREATE INDEX appointments_clinic_starts_idx ON clinic.appointments (clinic_id, starts_at);

CREATE TRIGGER set_updated_at_appointments
    BEFORE UPDATE ON clinic.appointments
    FOR EACH ROW EXECUTE FUNCTION clinic.set_updated_at();
