-- 001_system_seed.sql
-- System seed: feature flags and system settings. Safe for every environment (production
-- included); run after the migrations. No personal data, no accounts, no secrets.
--
-- Idempotent: rows are keyed by their unique key (clinic.feature_flags.key,
-- clinic.system_settings.key).
--   * a missing key is inserted with its default;
--   * an existing key keeps its value / enabled state (an operator may have changed it);
--     only its description is refreshed, and only when it differs, so a re-run that changes
--     nothing updates no row and moves no updated_at.
-- Neither table is audited, so this seed does not depend on audit partitions.

INSERT INTO clinic.feature_flags AS f (key, enabled, description) VALUES
    ('online_booking',        true,  'Patients can book open appointment slots online (booking.book_slot).'),
    ('patient_portal',        true,  'Patients can sign in to see their appointments, prescriptions and payments.'),
    ('appointment_reminders', false, 'Send appointment reminders through the configured SMS/e-mail provider.'),
    ('telehealth',            false, 'Offer video consultations for eligible appointments.'),
    ('outbound_webhooks',     false, 'Deliver queued webhook.outbound_deliveries to subscribers.')
ON CONFLICT (key) DO UPDATE
    SET description = EXCLUDED.description
    WHERE f.description IS DISTINCT FROM EXCLUDED.description;

INSERT INTO clinic.system_settings AS s (key, value, description) VALUES
    ('booking.default_slot_minutes',      '30',    'Length of a booking slot, in minutes, when a schedule does not say otherwise.'),
    ('booking.cancellation_notice_hours', '24',    'Minimum notice, in hours, for a patient to cancel a booking online.'),
    ('clinic.default_timezone',           '"UTC"', 'Time zone given to a new clinic when none is chosen.'),
    ('payments.default_currency',         '"EUR"', 'ISO 4217 currency for new payments when none is given.'),
    ('webhook.retry_backoff_seconds',     '[30, 120, 600, 3600, 21600]',
                                                   'Delays between outbound webhook delivery attempts; the last one repeats.')
ON CONFLICT (key) DO UPDATE
    SET description = EXCLUDED.description
    WHERE s.description IS DISTINCT FROM EXCLUDED.description;
