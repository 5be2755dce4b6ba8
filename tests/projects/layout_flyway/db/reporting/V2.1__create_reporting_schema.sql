CREATE SCHEMA reporting;

CREATE TABLE reporting.daily_counts (
    day        date NOT NULL,
    clinic_id  int NOT NULL REFERENCES clinic.clinics (id),
    patients   int NOT NULL DEFAULT 0,
    PRIMARY KEY (day, clinic_id)
);
