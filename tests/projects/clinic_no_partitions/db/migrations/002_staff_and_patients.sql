-- 002_staff_and_patients.sql

CREATE TABLE clinic.staff (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    full_name   text NOT NULL,
    email       text NOT NULL UNIQUE,
    role        clinic.staff_role NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE clinic.patients (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    full_name       text NOT NULL,
    born_on         date NOT NULL,
    sex             text CHECK (sex IN ('female', 'male', 'other', 'unknown')),
    email           text,
    phone           text,
    registered_gp   uuid REFERENCES clinic.staff (id),
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX patients_name_idx ON clinic.patients (lower(full_name));
