-- Clinics and their rooms.
CREATE SCHEMA clinic;

CREATE TABLE clinic.clinics (
    id    int PRIMARY KEY,
    name  text NOT NULL UNIQUE
);

CREATE TABLE clinic.rooms (
    clinic_id  int NOT NULL REFERENCES clinic.clinics (id),
    code       text NOT NULL,
    PRIMARY KEY (clinic_id, code)
);
