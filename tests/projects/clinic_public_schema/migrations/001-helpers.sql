-- 001-helpers.sql
-- Everything of Riverbend Clinic lives in the public schema.

CREATE OR REPLACE FUNCTION public.set_updated_at()
RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    NEW.updated_at = now();
    RETURN NEW;
END;
$$;

-- Working days (Mon-Fri) in [from_day, to_day): billing uses it for payment terms.
CREATE OR REPLACE FUNCTION public.business_days_between(from_day date, to_day date)
RETURNS integer
LANGUAGE sql
IMMUTABLE
AS $$
    SELECT count(*)::integer
      FROM generate_series(from_day, to_day - 1, interval '1 day') AS d
     WHERE extract(isodow FROM d) < 6
$$;
