-- 015_webhook.sql
-- Creates the webhook schema's tables:
--   webhook.inbound_events       events received from providers (payment processor, SMS
--                                gateway, ...). UNIQUE (provider, idempotency_key) makes
--                                receiving idempotent: INSERT ... ON CONFLICT DO NOTHING and a
--                                redelivered event is stored once. processed_at IS NULL marks
--                                work still to do (partial index inbound_events_unprocessed_idx).
--   webhook.outbound_deliveries  queue of events to deliver to subscribers. A worker claims due
--                                rows with
--                                  SELECT ... WHERE status = 'pending' AND next_attempt_at <= now()
--                                  ORDER BY next_attempt_at LIMIT n FOR UPDATE SKIP LOCKED
--                                served by the partial index outbound_deliveries_due_idx; on
--                                failure it increments attempts and moves next_attempt_at, and
--                                sets status 'failed' after max_attempts.
-- outbound_deliveries has a set_updated_at_outbound_deliveries trigger.

CREATE TABLE webhook.inbound_events (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    provider          text NOT NULL CHECK (provider ~ '^[a-z0-9_]+$'),
    idempotency_key   text NOT NULL CHECK (idempotency_key <> ''),
    event_type        text NOT NULL,
    payload           jsonb NOT NULL,
    received_at       timestamptz NOT NULL DEFAULT now(),
    processed_at      timestamptz,
    processing_error  text,
    CONSTRAINT inbound_events_provider_idempotency_key UNIQUE (provider, idempotency_key)
);

CREATE INDEX inbound_events_unprocessed_idx
    ON webhook.inbound_events (received_at)
    WHERE processed_at IS NULL;

CREATE TABLE webhook.outbound_deliveries (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    event_type       text NOT NULL,
    target_url       text NOT NULL CHECK (target_url ~ '^https?://'),
    payload          jsonb NOT NULL,
    status           webhook.delivery_status NOT NULL DEFAULT 'pending',
    attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts     integer NOT NULL DEFAULT 10 CHECK (max_attempts > 0),
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_error       text,
    delivered_at     timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT outbound_deliveries_delivered_at_required
        CHECK (status <> 'delivered' OR delivered_at IS NOT NULL)
);

CREATE INDEX outbound_deliveries_due_idx
    ON webhook.outbound_deliveries (next_attempt_at)
    WHERE status = 'pending';

CREATE TRIGGER set_updated_at_outbound_deliveries
    BEFORE UPDATE ON webhook.outbound_deliveries
    FOR EACH ROW EXECUTE FUNCTION clinic.set_updated_at();
