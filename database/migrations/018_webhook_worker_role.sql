-- 018_webhook_worker_role.sql
-- Moves the webhook queues from the application role to a worker role of their own.
--
-- Why: webhook.inbound_events and webhook.outbound_deliveries belong to no clinic (an event
-- comes from a provider, a delivery goes to a subscriber; neither table has a clinic column),
-- yet 016 let every clinic_app session read and change every row of both: a session acting for
-- one clinic could read the payment events of all the others. Tenant sessions have no business
-- with these queues, so clinic_app loses every privilege on them and on the schema, and a new
-- role does the queue work:
--
--   clinic_webhook_worker (NOLOGIN; the webhook receiver and the delivery worker log in as
--   members of it) gets
--     USAGE on schema webhook; SELECT, INSERT, UPDATE, DELETE on both webhook tables;
--     USAGE on schema clinic, and on clinic.payments: SELECT of the columns that find a
--     provider's payment (id, clinic_id, provider, provider_reference, status) and UPDATE of
--     status and paid_at only — what settling a "payment.succeeded"/"payment.failed" event
--     needs. Row-level security on clinic.payments (017) gets a policy for the worker: it sees
--     and settles only payments that carry a provider reference (card/provider payments, never
--     cash or insurance rows), whatever their clinic, because an event names no clinic.
--
-- Like clinic_app (016), the role is cluster-wide and created only if missing. Creating it needs
-- CREATEROLE; a build role without it gets an error saying to create the role beforehand.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'clinic_webhook_worker') THEN
        BEGIN
            CREATE ROLE clinic_webhook_worker NOLOGIN;
        EXCEPTION
            -- another database build in the same cluster created it between our check and now
            WHEN duplicate_object OR unique_violation THEN
                NULL;
            WHEN insufficient_privilege THEN
                RAISE EXCEPTION '018_webhook_worker_role.sql: role clinic_webhook_worker does not exist and % may not create it',
                    current_user
                    USING ERRCODE = 'insufficient_privilege',
                          HINT = 'Create it once per cluster as a role with CREATEROLE: CREATE ROLE clinic_webhook_worker NOLOGIN;';
        END;
    END IF;
END;
$$;

REVOKE ALL ON ALL TABLES IN SCHEMA webhook FROM clinic_app;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA webhook FROM clinic_app;
REVOKE ALL ON SCHEMA webhook FROM clinic_app;

GRANT USAGE ON SCHEMA webhook TO clinic_webhook_worker;
GRANT SELECT, INSERT, UPDATE, DELETE ON webhook.inbound_events, webhook.outbound_deliveries
    TO clinic_webhook_worker;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA webhook TO clinic_webhook_worker;

GRANT USAGE ON SCHEMA clinic TO clinic_webhook_worker;
GRANT SELECT (id, clinic_id, provider, provider_reference, status), UPDATE (status, paid_at)
    ON clinic.payments TO clinic_webhook_worker;

CREATE POLICY payments_webhook_worker_select ON clinic.payments
    FOR SELECT TO clinic_webhook_worker
    USING (provider_reference IS NOT NULL);

CREATE POLICY payments_webhook_worker_settle ON clinic.payments
    FOR UPDATE TO clinic_webhook_worker
    USING (provider_reference IS NOT NULL)
    WITH CHECK (provider_reference IS NOT NULL);
