-- 003_clinic_tables.sql

CREATE TABLE clinic.users (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username    text NOT NULL UNIQUE,
    full_name   text NOT NULL,
    is_doctor   boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE clinic.patients (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    chart_no    text NOT NULL UNIQUE,
    full_name   text NOT NULL,
    dob         date NOT NULL,
    phone       text,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE clinic.appointments (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    patient_id  bigint NOT NULL REFERENCES clinic.patients,
    doctor_id   bigint NOT NULL REFERENCES clinic.users,
    start_time  timestamptz NOT NULL,
    end_time    timestamptz NOT NULL,
    state       text NOT NULL DEFAULT 'booked' CHECK (state IN ('booked', 'done', 'cancelled')),
    CHECK (end_time > start_time)
);

CREATE TABLE clinic.payments (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    appointment_id  bigint NOT NULL REFERENCES clinic.appointments,
    amount          numeric(10, 2) NOT NULL CHECK (amount > 0),
    paid_at         timestamptz NOT NULL DEFAULT now()
);
