-- 003-vital-signs.sql
-- Readings from the waiting-room kiosks, partitioned by year; anything outside a yearly
-- partition goes to the DEFAULT one until the next yearly partition is attached. Not audited.

CREATE TABLE vital_signs (
    patient_id      integer NOT NULL REFERENCES patients (id),
    measured_at     timestamptz NOT NULL,
    systolic        smallint,
    diastolic       smallint,
    pulse           smallint,
    weight_kg       numeric(5, 1)
) PARTITION BY RANGE (measured_at);

CREATE TABLE vital_signs_2025 PARTITION OF vital_signs
    FOR VALUES FROM ('2025-01-01 00:00:00+00') TO ('2026-01-01 00:00:00+00');
CREATE TABLE vital_signs_default PARTITION OF vital_signs DEFAULT;
