-- 002_public_helpers.sql
-- Small helpers shared by every schema. They live in public so that they resolve with any
-- search_path our services use.

SET search_path TO clinic, public;

CREATE OR REPLACE FUNCTION public.set_updated_at()
RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;

CREATE OR REPLACE FUNCTION public.normalize_email(raw text)
RETURNS text
LANGUAGE sql
IMMUTABLE
AS $$
    SELECT lower(btrim(raw))
$$;

CREATE OR REPLACE FUNCTION public.full_name(first_name text, last_name text)
RETURNS text
LANGUAGE sql
IMMUTABLE
AS $$
    SELECT btrim(coalesce(first_name, '') || ' ' || coalesce(last_name, ''))
$$;
