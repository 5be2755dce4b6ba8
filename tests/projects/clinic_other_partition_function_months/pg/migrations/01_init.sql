-- 01_init.sql - Brightsmile Dental: schemas, dentists, patients

CREATE SCHEMA clinic;
CREATE SCHEMA audit;

CREATE TABLE clinic.dentists (
    id          serial PRIMARY KEY,
    name        varchar(120) NOT NULL,
    email       varchar(200) NOT NULL UNIQUE,
    gdc_number  varchar(20) NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE clinic.patients (
    id              serial PRIMARY KEY,
    name            varchar(120) NOT NULL,
    date_of_birth   date NOT NULL,
    email           varchar(200),
    mobile          varchar(30),
    nhs_number      varchar(10) UNIQUE,
    registered_at   timestamptz NOT NULL DEFAULT now()
);
