-- migrate:up
CREATE TABLE clinic.prescriptions (
    id           bigserial PRIMARY KEY,
    patient_id   bigint NOT NULL REFERENCES clinic.patients (id) ON DELETE CASCADE,
    drug         text NOT NULL,
    dose_mg      numeric(8, 2) NOT NULL CHECK (dose_mg > 0),
    prescribed   date NOT NULL DEFAULT current_date
);

CREATE FUNCTION clinic.refuse_allergic_drug() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.drug = ANY (SELECT unnest(allergies) FROM clinic.patients WHERE id = NEW.patient_id) THEN
    RAISE EXCEPTION 'patient % is allergic to %', NEW.patient_id, NEW.drug
      USING ERRCODE = 'check_violation';
  END IF;
  RETURN NEW;
END;
$$;

CREATE TRIGGER prescriptions_allergy BEFORE INSERT OR UPDATE ON clinic.prescriptions
FOR EACH ROW EXECUTE FUNCTION clinic.refuse_allergic_drug();

-- migrate:down
DROP TABLE clinic.prescriptions;
DROP FUNCTION clinic.refuse_allergic_drug();
