-- +goose Up
CREATE TABLE lab.reference_ranges (
    analyte  text PRIMARY KEY,
    low      numeric NOT NULL,
    high     numeric NOT NULL,
    CHECK (low < high)
);

INSERT INTO lab.reference_ranges VALUES
    ('glucose', 3.9, 5.6),
    ('potassium', 3.5, 5.1);

-- +goose Down
DROP TABLE lab.reference_ranges;
