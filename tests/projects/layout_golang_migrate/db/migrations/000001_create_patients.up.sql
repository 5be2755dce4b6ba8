CREATE SCHEMA IF NOT EXISTS clinic;

CREATE TABLE clinic.patients (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    full_name   text NOT NULL,
    birth_date  date NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
