-- 023_audit_role_in_effect.sql
-- Records in every new audit row the database role the change was made as, next to the login.
--
-- Why: audit.audit_logs.db_user (011) is session_user, the login. An application logs in as one
-- role and works as another (SET ROLE clinic_app, or SET LOCAL ROLE per request), so every audit
-- row named the login and none said which role's privileges made the change. current_user does
-- not help either: audit.log_change() is SECURITY DEFINER, so inside it current_user is always the
-- function's owner. What survives into the trigger is the session's "role" setting, which
-- SET [LOCAL] ROLE sets and a SECURITY DEFINER call does not change: it is the role name, or
-- 'none' when no SET ROLE is in effect (then the role in effect is the login itself).
--
--   audit.audit_logs.db_role  text  the role in effect: current_setting('role'), or session_user
--                                   when that is 'none'. NULL on rows written before this
--                                   migration.
--
-- audit.log_change() is replaced with the same behaviour plus this column. It stays SECURITY
-- DEFINER with a fixed search_path (CREATE OR REPLACE keeps its owner and its grants: none for
-- PUBLIC). A change made inside another SECURITY DEFINER function is recorded with the role the
-- session had set, not with that function's owner.

ALTER TABLE audit.audit_logs ADD COLUMN db_role text;

COMMENT ON COLUMN audit.audit_logs.db_role IS
    'Role in effect for the audited change: the SET ROLE role, or the login (session_user) when none is set. NULL before 023_audit_role_in_effect.sql.';
COMMENT ON COLUMN audit.audit_logs.db_user IS
    'The login (session_user) of the audited change; see db_role for the role it acted as.';

CREATE OR REPLACE FUNCTION audit.log_change()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_key_column  text := coalesce(TG_ARGV[0], 'id');
    v_old         jsonb;
    v_new         jsonb;
    v_changed     text[];
    -- current_user is this function's owner here (SECURITY DEFINER); the session's role
    -- setting still names the role the change was made as.
    v_role        text := current_setting('role');
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        v_old := to_jsonb(OLD);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        v_new := to_jsonb(NEW);
    END IF;

    IF TG_OP = 'UPDATE' THEN
        SELECT array_agg(n.key ORDER BY n.key)
          INTO v_changed
          FROM jsonb_each(v_new) AS n
         WHERE n.value IS DISTINCT FROM v_old -> n.key;
        IF v_changed IS NULL THEN
            RETURN NULL;
        END IF;
    END IF;

    INSERT INTO audit.audit_logs
        (table_schema, table_name, record_id, action, old_values, new_values, changed_fields, actor_id,
         db_role)
    VALUES (
        TG_TABLE_SCHEMA,
        TG_TABLE_NAME,
        coalesce(v_new, v_old) ->> v_key_column,
        TG_OP,
        CASE WHEN TG_NARGS > 1 THEN v_old - TG_ARGV[1:TG_NARGS - 1] ELSE v_old END,
        CASE WHEN TG_NARGS > 1 THEN v_new - TG_ARGV[1:TG_NARGS - 1] ELSE v_new END,
        v_changed,
        nullif(current_setting('app.current_user_id', true), ''),
        CASE WHEN v_role = 'none' THEN session_user::text ELSE v_role END
    );

    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION audit.log_change() IS
    'AFTER row trigger writing one audit.audit_logs row per INSERT/UPDATE/DELETE, with the login (db_user) and the role in effect (db_role). SECURITY DEFINER. Args: key column (default id), then columns to redact.';
