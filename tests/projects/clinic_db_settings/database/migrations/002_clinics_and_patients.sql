-- 002_clinics_and_patients.sql
-- Tenant isolation: with app.tenant_mode = 'strict' (set on the database in 005), a row of a
-- tenant table may only be written for the clinic named by app.current_clinic_id, which the
-- API sets per request. clinic.enforce_tenant() checks it on every tenant table.

CREATE TABLE clinic.clinics (
    id          integer PRIMARY KEY,
    name        text NOT NULL,
    city        text NOT NULL
);

CREATE FUNCTION clinic.enforce_tenant()
RETURNS trigger
LANGUAGE plpgsql
AS $$
DECLARE
    mode            text := coalesce(nullif(current_setting('app.tenant_mode', true), ''), 'off');
    current_clinic  text := nullif(current_setting('app.current_clinic_id', true), '');
BEGIN
    IF mode = 'strict' AND NEW.clinic_id IS DISTINCT FROM current_clinic::integer THEN
        RAISE EXCEPTION 'tenant isolation: a session of clinic % may not write % rows of clinic %',
                        coalesce(current_clinic, '<none>'), TG_TABLE_NAME, NEW.clinic_id
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$$;

CREATE TABLE clinic.patients (
    id          bigserial PRIMARY KEY,
    clinic_id   integer NOT NULL REFERENCES clinic.clinics,
    name        text NOT NULL,
    birth_date  date NOT NULL,
    email       text,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TRIGGER patients_tenant BEFORE INSERT OR UPDATE ON clinic.patients
    FOR EACH ROW EXECUTE FUNCTION clinic.enforce_tenant();
