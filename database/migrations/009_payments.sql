-- 009_payments.sql
-- Creates clinic.payments (financial data: amount > 0, ISO currency, status, method, the
-- payment provider's reference) and set_updated_at_payments. A succeeded or refunded payment
-- must carry paid_at; a provider reference is unique per provider.

CREATE TABLE clinic.payments (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    clinic_id           uuid NOT NULL,
    patient_id          uuid NOT NULL,
    appointment_id      uuid,
    amount              numeric(12, 2) NOT NULL CONSTRAINT payments_amount_positive CHECK (amount > 0),
    currency            clinic.currency_code NOT NULL,
    status              clinic.payment_status NOT NULL DEFAULT 'pending',
    method              clinic.payment_method NOT NULL,
    provider            text,
    provider_reference  text,
    paid_at             timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT payments_paid_at_required
        CHECK (status NOT IN ('succeeded', 'refunded') OR paid_at IS NOT NULL),
    CONSTRAINT payments_provider_reference_key UNIQUE (provider, provider_reference),
    CONSTRAINT payments_patient_fk FOREIGN KEY (clinic_id, patient_id)
        REFERENCES clinic.patients (clinic_id, id),
    CONSTRAINT payments_appointment_fk FOREIGN KEY (clinic_id, appointment_id)
        REFERENCES clinic.appointments (clinic_id, id)
);

CREATE INDEX payments_patient_created_idx ON clinic.payments (patient_id, created_at);
CREATE INDEX payments_appointment_idx ON clinic.payments (appointment_id);

CREATE TRIGGER set_updated_at_payments
    BEFORE UPDATE ON clinic.payments
    FOR EACH ROW EXECUTE FUNCTION clinic.set_updated_at();
