-- +goose Up
CREATE VIEW lab.flagged_results AS
SELECT r.*, (r.value < rr.low OR r.value > rr.high) AS out_of_range
FROM lab.results r
JOIN lab.reference_ranges rr USING (analyte);

-- +goose Down
DROP VIEW lab.flagged_results;
