-- 021_book_slot_refusals.sql
-- Replaces booking.book_slot(uuid, uuid, text) (014) with a version that
--   * tells an unknown slot from an unknown patient by SQLSTATE, not only by message text:
--       P0002 no_data_found         the slot does not exist (or row-level security hides it)
--       23503 foreign_key_violation the patient does not exist (or row-level security hides it)
--     014 raised P0002 for both, so callers had to parse the message to know which;
--   * refuses a slot whose doctor is not accepting patients (doctors.is_accepting_patients) and a
--     slot of a clinic that is not active (clinics.is_active), with 22023
--     invalid_parameter_value like the other refusals; 014 booked both.
-- Everything else is unchanged: the slot row is locked (SELECT ... FOR UPDATE), so concurrent
-- calls for one slot are serialised and the loser gets 23P01; 22023 for a slot that has started
-- or a patient of another clinic. Checks run in this order: slot exists, slot free, slot in the
-- future, clinic active, doctor accepting, patient exists, patient of the slot's clinic.
-- The signature is the same, so the grants of 016 (EXECUTE for clinic_app only) stay. The function
-- still runs with the caller's rights: row-level security applies to what it reads and writes.

CREATE OR REPLACE FUNCTION booking.book_slot(p_slot_id uuid, p_patient_id uuid, p_reason text DEFAULT NULL)
RETURNS uuid
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_slot            booking.slots%ROWTYPE;
    v_clinic_active   boolean;
    v_accepting       boolean;
    v_patient_clinic  uuid;
    v_appointment_id  uuid;
BEGIN
    -- Lock the slot: a concurrent call for the same slot waits here until this transaction ends.
    SELECT * INTO v_slot FROM booking.slots WHERE id = p_slot_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'booking.book_slot: slot % does not exist', p_slot_id
            USING ERRCODE = 'no_data_found';
    END IF;

    IF EXISTS (SELECT 1 FROM booking.bookings b WHERE b.slot_id = p_slot_id AND b.status = 'active') THEN
        RAISE EXCEPTION 'booking.book_slot: slot % is already booked', p_slot_id
            USING ERRCODE = 'exclusion_violation',
                  DETAIL = format('Doctor %s, %s to %s.', v_slot.doctor_id, v_slot.starts_at, v_slot.ends_at),
                  HINT = 'Choose another slot.';
    END IF;

    IF v_slot.starts_at <= now() THEN
        RAISE EXCEPTION 'booking.book_slot: slot % started at %, it can no longer be booked',
            p_slot_id, v_slot.starts_at
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    SELECT c.is_active INTO v_clinic_active FROM clinic.clinics c WHERE c.id = v_slot.clinic_id;
    IF v_clinic_active IS NOT TRUE THEN
        RAISE EXCEPTION 'booking.book_slot: clinic % is not active, slot % cannot be booked',
            v_slot.clinic_id, p_slot_id
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    SELECT d.is_accepting_patients INTO v_accepting FROM clinic.doctors d WHERE d.id = v_slot.doctor_id;
    IF v_accepting IS NOT TRUE THEN
        RAISE EXCEPTION 'booking.book_slot: doctor % is not accepting patients, slot % cannot be booked',
            v_slot.doctor_id, p_slot_id
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    SELECT p.clinic_id INTO v_patient_clinic FROM clinic.patients p WHERE p.id = p_patient_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'booking.book_slot: patient % does not exist', p_patient_id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    IF v_patient_clinic <> v_slot.clinic_id THEN
        RAISE EXCEPTION 'booking.book_slot: patient % is registered at another clinic than slot %',
            p_patient_id, p_slot_id
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    INSERT INTO clinic.appointments (clinic_id, doctor_id, patient_id, starts_at, ends_at, status, reason)
    VALUES (v_slot.clinic_id, v_slot.doctor_id, p_patient_id, v_slot.starts_at, v_slot.ends_at,
            'scheduled', p_reason)
    RETURNING id INTO v_appointment_id;

    INSERT INTO booking.bookings (slot_id, doctor_id, starts_at, ends_at, patient_id, appointment_id)
    VALUES (v_slot.id, v_slot.doctor_id, v_slot.starts_at, v_slot.ends_at, p_patient_id, v_appointment_id);

    RETURN v_appointment_id;
END;
$$;

COMMENT ON FUNCTION booking.book_slot(uuid, uuid, text) IS
    'Books a slot for a patient atomically and returns the new clinic.appointments id. Raises 23P01 when the slot is taken, P0002 for an unknown slot, 23503 for an unknown patient, 22023 for a past slot, an inactive clinic, a doctor not accepting patients or a patient of another clinic.';
