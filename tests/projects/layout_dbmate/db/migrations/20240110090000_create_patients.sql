-- migrate:up
CREATE SCHEMA clinic;

CREATE TABLE clinic.patients (
    id         bigserial PRIMARY KEY,
    full_name  text NOT NULL,
    allergies  text[] NOT NULL DEFAULT '{}'
);

-- migrate:down
DROP TABLE clinic.patients CASCADE;
DROP SCHEMA clinic CASCADE;
