"""The dev-seed wrapper on a real server: triggers, foreign keys, guards, notices."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from pytest_clinicdb.errors import ClinicDBError, DevSeedRefusedError, SeedError
from pytest_clinicdb.seeds import disabled_triggers, load_dev_seed

pytestmark = pytest.mark.integration

DEV_SEED = Path(__file__).resolve().parents[2] / "database" / "seeds" / "002_dev_seed.sql"
ORPHAN_PATIENT = (
    "INSERT INTO clinic.patients (id, clinic_id, medical_record_number, full_name, date_of_birth)\n"
    "VALUES ('00000000-0000-0000-0000-00000000dead', '00000000-0000-0000-0000-000000000bad',\n"
    "        'MRN-X', 'Orphan Example', '1990-01-01');\n"
)


@pytest.fixture
def db(clinic_dsn):
    with psycopg.connect(clinic_dsn, autocommit=True) as conn:
        yield conn


def count(conn, table: str) -> int:
    return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def test_loads_002_with_audit_triggers_off_and_back_on(db):
    audit_before = count(db, "audit.audit_logs")
    report = load_dev_seed(db, DEV_SEED)
    assert count(db, "clinic.patients") > 0
    assert count(db, "audit.audit_logs") == audit_before  # relaxed audit, by design
    assert disabled_triggers(db, ["clinic", "booking", "webhook", "audit"]) == []
    assert "clinic.patients.audit_patients" in report.disabled
    assert all(".audit_" in t for t in report.disabled)  # default mode touches audit triggers only
    assert report.unaudited_rows["clinic.patients"] == count(db, "clinic.patients")
    assert [n.severity for n in report.notices] == ["WARNING"]
    assert "historical" in report.notices[0].message
    assert "row(s) seeded without audit" in report.summary()
    again = load_dev_seed(db, DEV_SEED)  # idempotent: nothing new, nothing unaudited
    assert again.unaudited_rows == {}


def test_failing_seed_rolls_back_rows_and_trigger_state(db, tmp_path):
    broken = tmp_path / "002_dev_seed.sql"
    text = DEV_SEED.read_text()
    broken.write_text(text + "\nSELECT no_such_column FROM clinic.patients;\n")
    with pytest.raises(SeedError) as info:
        load_dev_seed(db, broken)
    assert info.value.file == broken
    assert info.value.line == text.count("\n") + 2
    assert 'column "no_such_column" does not exist' in str(info.value)
    assert count(db, "clinic.patients") == 0
    assert disabled_triggers(db, ["clinic"]) == []


def test_default_mode_keeps_foreign_keys_enforced(db, tmp_path):
    seed = tmp_path / "002_orphan.sql"
    seed.write_text(ORPHAN_PATIENT)
    with pytest.raises(SeedError) as info:
        load_dev_seed(db, seed)
    assert info.value.sqlstate == "23503"
    assert count(db, "clinic.patients") == 0
    assert disabled_triggers(db, ["clinic"]) == []


def is_superuser(conn) -> bool:
    return conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()[0]


def test_all_mode_catches_the_row_that_disable_trigger_all_lets_through(db, tmp_path):
    seed = tmp_path / "002_orphan.sql"
    seed.write_text(ORPHAN_PATIENT)
    if not is_superuser(db):
        with pytest.raises(DevSeedRefusedError, match="mode all needs a superuser"):
            load_dev_seed(db, seed, mode="all")
        assert count(db, "clinic.patients") == 0
        return
    with pytest.raises(SeedError) as info:
        load_dev_seed(db, seed, mode="all")
    text = str(info.value)
    assert "foreign keys violated by rows loaded with DISABLE TRIGGER ALL" in text
    assert (
        "clinic.patients (clinic_id=UUID('00000000-0000-0000-0000-000000000bad')) violates" in text
    )
    assert count(db, "clinic.patients") == 0
    assert disabled_triggers(db, ["clinic"]) == []


@pytest.mark.parametrize("environment", ["production", "staging", ""])
def test_the_wrapper_refuses_non_dev_environments_by_itself(db, environment):
    with pytest.raises(DevSeedRefusedError, match="refusing to load the DEV/TEST ONLY seed"):
        load_dev_seed(db, DEV_SEED, environment=environment)
    assert count(db, "clinic.patients") == 0


def test_the_wrapper_refuses_external_servers_unless_allowed(db):
    with pytest.raises(DevSeedRefusedError, match="into an external server"):
        load_dev_seed(db, DEV_SEED, external=True)
    assert count(db, "clinic.patients") == 0
    load_dev_seed(db, DEV_SEED, external=True, allow_external=True)
    assert count(db, "clinic.patients") > 0


def test_an_explicit_table_list_limits_the_disabled_triggers(db):
    audit_before = count(db, "audit.audit_logs")
    report = load_dev_seed(db, DEV_SEED, tables=["clinic.clinics"])
    assert report.disabled == ["clinic.clinics.audit_clinics"]
    # Patients and the rest were written with their audit triggers on: they were audited.
    assert count(db, "audit.audit_logs") > audit_before
    assert set(report.unaudited_rows) == {"clinic.clinics"}
    assert disabled_triggers(db, ["clinic"]) == []


def test_an_unknown_table_in_the_list_is_named_and_nothing_runs(db):
    with pytest.raises(ClinicDBError, match="dev seed tables not found: clinic.patient, nope"):
        load_dev_seed(db, DEV_SEED, tables=["clinic.patients", "clinic.patient", "nope"])
    assert count(db, "clinic.patients") == 0
