-- 019_shared_tables_read_only.sql
-- Makes the three tables every clinic shares by design read-only for the application role:
--   clinic.clinics          the clinics directory (name, slug, time zone, public contact details)
--   clinic.feature_flags    system configuration (no personal data)
--   clinic.system_settings  system configuration (no personal data)
--
-- Why: every clinic_app session sees every row of these tables, deliberately (a session needs
-- the directory and the configuration before and whatever clinic it acts for), so they have no
-- row-level security. But 016 also let clinic_app INSERT, UPDATE and DELETE them: a session
-- acting for one clinic could rename or deactivate another clinic, or switch a feature off for
-- everyone. What every tenant sees must not be changed by one tenant: clinic_app keeps SELECT
-- only. Clinics are created and changed by the schema owner (platform administration); flags
-- and settings by the system seed (001_system_seed.sql) and operators.

REVOKE INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER
    ON clinic.clinics, clinic.feature_flags, clinic.system_settings
    FROM clinic_app;
