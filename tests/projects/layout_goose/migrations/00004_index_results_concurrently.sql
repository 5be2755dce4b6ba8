-- +goose NO TRANSACTION
-- +goose Up
CREATE INDEX CONCURRENTLY results_order ON lab.results (order_id);

-- +goose Down
DROP INDEX CONCURRENTLY lab.results_order;
