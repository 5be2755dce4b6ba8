CREATE TYPE clinic.appointment_status AS ENUM ('booked', 'checked_in', 'done', 'cancelled');

CREATE TABLE clinic.appointments (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    patient_id  bigint NOT NULL REFERENCES clinic.patients (id),
    starts_at   timestamptz NOT NULL,
    status      clinic.appointment_status NOT NULL DEFAULT 'booked'
);
