-- +goose Up
CREATE SCHEMA lab;

CREATE TABLE lab.orders (
    id          bigserial PRIMARY KEY,
    patient_ref text NOT NULL,
    ordered_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE lab.results (
    id          bigserial PRIMARY KEY,
    order_id    bigint NOT NULL REFERENCES lab.orders (id),
    analyte     text NOT NULL,
    value       numeric NOT NULL,
    unit        text NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE lab.results;
DROP TABLE lab.orders;
DROP SCHEMA lab;
