"""The clinicdb command against a real server (subprocess, exit codes, --json)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ..conftest import REPO

pytestmark = pytest.mark.integration


def clinicdb(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest_clinicdb.cli", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_migrate_seed_and_dev_seed_on_an_empty_database(empty_db):
    dsn = empty_db.full_dsn
    first = clinicdb("migrate", "--dsn", dsn, "--json")
    assert first.returncode == 0, first.stderr
    assert len(json.loads(first.stdout)["applied"]) == 17
    check = clinicdb("migrate", "--check", "--dsn", dsn)
    assert (check.returncode, check.stdout) == (0, "pending: none\nedited:  none\n")
    assert clinicdb("seed", "--dsn", dsn).returncode == 0
    empty_db.execute(
        "SELECT audit.ensure_monthly_partitions(date_trunc('month', now()), "
        "date_trunc('month', now()) + interval '1 month')"
    )
    dev = clinicdb("seed", "--dev", "--dsn", dsn)
    assert dev.returncode == 0, dev.stderr
    assert dev.stdout.startswith(
        "*** DEV/TEST ONLY: loading 002_dev_seed.sql (app.environment=test) ***"
    )
    assert "WARNING:" in dev.stdout
    assert empty_db.execute("SELECT count(*) FROM clinic.patients").fetchone()[0] > 0


def test_dev_seed_refuses_production(empty_db):
    clinicdb("migrate", "--dsn", empty_db.full_dsn)
    result = clinicdb("seed", "--dev", "--environment", "production", "--dsn", empty_db.full_dsn)
    assert result.returncode == 1
    assert (
        "refusing to load the DEV/TEST ONLY seed 002_dev_seed.sql: target environment is 'production'"
        in result.stderr
    )
    assert empty_db.execute("SELECT count(*) FROM clinic.patients").fetchone()[0] == 0


def test_connection_error_is_exit_2_and_masks_the_password():
    result = clinicdb("migrate", "--dsn", "host=127.0.0.1 port=1 user=x password=s3cret dbname=y")
    assert result.returncode == 2
    assert "cannot connect" in result.stderr
    assert "s3cret" not in result.stderr + result.stdout


def test_dev_seed_table_list_and_unknown_table(empty_db):
    dsn = empty_db.full_dsn
    clinicdb("migrate", "--dsn", dsn)
    bad = clinicdb("seed", "--dev", "--tables", "clinic.nope", "--dsn", dsn)
    assert bad.returncode == 1
    assert "dev seed tables not found: clinic.nope" in bad.stderr
    empty_db.execute(
        "SELECT audit.ensure_monthly_partitions(date_trunc('month', now()), "
        "date_trunc('month', now()) + interval '1 month')"
    )
    ok = clinicdb(
        "seed", "--dev", "--tables", "clinic.clinics, clinic.users", "--json", "--dsn", dsn
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["disabled"] == [
        "clinic.clinics.audit_clinics",
        "clinic.users.audit_users",
    ]


def test_lock_writes_the_lock_file_and_reports_what_it_records(tmp_path):
    import shutil

    migrations = tmp_path / "migrations"
    shutil.copytree(REPO / "database" / "migrations", migrations)
    first = clinicdb("lock", "--migrations", str(migrations), "--json")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout) == {
        "ok": True,
        "lock": str(tmp_path / "migrations.lock"),
        "changes": [],
    }
    (migrations / "018_next.sql").write_text("SELECT 1;\n")
    again = clinicdb("lock", "--migrations", str(migrations))
    assert again.stdout.splitlines() == [
        "recorded: new migration 018_next.sql is not in the lock file",
        f"wrote {tmp_path / 'migrations.lock'} (18 migrations)",
    ]
    missing = clinicdb("lock", "--migrations", str(tmp_path / "nope"))
    assert missing.returncode == 2 and "nope" in missing.stderr
