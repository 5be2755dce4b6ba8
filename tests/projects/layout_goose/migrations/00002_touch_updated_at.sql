-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION lab.touch_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := clock_timestamp();
    RETURN NEW;
END;
$$;
-- +goose StatementEnd

CREATE TRIGGER results_touch BEFORE UPDATE ON lab.results
FOR EACH ROW EXECUTE FUNCTION lab.touch_updated_at();

-- +goose Down
-- +goose StatementBegin
DROP TRIGGER results_touch ON lab.results;
DROP FUNCTION lab.touch_updated_at();
-- +goose StatementEnd
