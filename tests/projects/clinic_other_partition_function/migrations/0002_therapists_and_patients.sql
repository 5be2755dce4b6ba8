-- 0002 therapists and patients

CREATE TABLE clinic.therapists (
    therapist_id    integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    display_name    text NOT NULL,
    email           text NOT NULL UNIQUE,
    registration_no text NOT NULL UNIQUE,
    is_active       boolean NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE clinic.patients (
    patient_id      integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    given_name      text NOT NULL,
    family_name     text NOT NULL,
    birth_date      date NOT NULL,
    email           text,
    phone           text,
    insurer         text,
    insurance_no    text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (insurer, insurance_no)
);
