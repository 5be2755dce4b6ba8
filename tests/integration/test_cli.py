"""The clinicdb command against a real server (subprocess, exit codes, --json)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from ..conftest import REPO

pytestmark = pytest.mark.integration

#: The clinic database's migrations (their number grows with the schema).
MIGRATIONS = len(list((REPO / "database" / "migrations").glob("*.sql")))


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
    assert len(json.loads(first.stdout)["applied"]) == MIGRATIONS
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
    assert bad.returncode == 2  # bad input
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
    (migrations / "999_next.sql").write_text("SELECT 1;\n")
    again = clinicdb("lock", "--migrations", str(migrations))
    assert again.stdout.splitlines() == [
        "recorded: new migration 999_next.sql is not in the lock file",
        f"wrote {tmp_path / 'migrations.lock'} ({MIGRATIONS + 1} migrations)",
    ]
    missing = clinicdb("lock", "--migrations", str(tmp_path / "nope"))
    assert missing.returncode == 2 and "nope" in missing.stderr


def migrated(empty_db) -> str:
    dsn = empty_db.full_dsn
    assert clinicdb("migrate", "--dsn", dsn).returncode == 0
    return dsn


def test_status_one_screen_and_its_failures(empty_db, clinic_postgres):
    from pytest_clinicdb.server.cluster import ClusterDir

    dsn = migrated(empty_db)
    empty_db.execute(
        "SELECT audit.ensure_monthly_partitions(date_trunc('month', now()), "
        "date_trunc('month', now()) + interval '4 months')"
    )
    # With the server's password in the DSN, so that there is a password to mask.
    if clinic_postgres.password:  # the external backend's DSN has one
        password, target = clinic_postgres.password, dsn
    else:  # the embedded server's unix socket needs none; its TCP port does
        password = ClusterDir(clinic_postgres.data_dir.parent).state()["password"]
        port, db = clinic_postgres.tcp_port, empty_db.info.dbname
        target = f"postgresql://postgres:{password}@127.0.0.1:{port}/{db}"
    ok = clinicdb("status", "--dsn", target)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert f"migrations:  {MIGRATIONS} applied, 0 pending" in ok.stdout
    assert "partitions:  covered (this month + 3; audit.audit_logs until 20" in ok.stdout
    assert "triggers:    all enabled" in ok.stdout
    assert password not in ok.stdout + ok.stderr
    assert "password=***" in ok.stdout

    empty_db.execute("ALTER TABLE clinic.patients DISABLE TRIGGER audit_patients")
    bad = clinicdb("status", "--dsn", dsn, "--months-ahead", "60", "--json")
    assert bad.returncode == 1
    data = json.loads(bad.stdout)
    assert data["ok"] is False and data["applied"] == MIGRATIONS and data["pending"] == []
    problems = [p["problem"] for p in data["problems"]]
    assert any(p.startswith("gap in audit.audit_logs") for p in problems)
    assert "trigger clinic.patients.audit_patients is disabled" in problems


def test_partitions_show_ensure_and_refusal(empty_db):
    dsn = migrated(empty_db)
    shown = clinicdb("partitions", "--dsn", dsn, "--json")
    data = json.loads(shown.stdout)
    assert [t["table"] for t in data["tables"]] == ["audit.audit_logs"]
    assert data["tables"][0]["partitions"][0] == {
        "name": "audit.audit_logs_p2025_01",
        "from": "2025-01-01T00:00:00+00:00",
        "to": "2025-02-01T00:00:00+00:00",
    }
    labelled = dsn + " options='-c app.environment=production'"
    refused = clinicdb("partitions", "--dsn", labelled, "--ensure", "2031-01-01", "2031-03-01")
    assert refused.returncode == 2
    assert "refusing --ensure on a target labelled app.environment=production" in refused.stderr
    done = clinicdb("partitions", "--dsn", dsn, "--ensure", "2031-01-01", "2031-03-01")
    assert done.stdout.splitlines()[0] == (
        "created 2 partition(s) of audit.audit_logs by "
        "audit.ensure_monthly_partitions(timestamp with time zone,timestamp with time zone)"
    )
    assert (
        "audit.audit_logs_p2031_02 [2031-02-01 00:00:00+00, 2031-03-01 00:00:00+00)" in done.stdout
    )


def test_check_runs_the_battery_and_reports_json(tmp_path, monkeypatch, cache_dir):
    import shutil

    # Its own cache: the copied project is deleted with tmp_path, its cluster with cache_dir.
    monkeypatch.setenv("CLINICDB_CACHE_DIR", str(cache_dir))
    database = tmp_path / "database"
    shutil.copytree(REPO / "database", database)
    good = clinicdb(
        "check",
        "--migrations",
        str(database / "migrations"),
        "--seeds",
        str(database / "seeds"),
        "--json",
    )
    data = json.loads(good.stdout)
    assert good.returncode == 0 and data["ok"] is True, good.stdout
    assert len(data["checks"]) == 8
    assert {c["outcome"] for c in data["checks"]} == {"passed"}

    (database / "migrations" / "003_updated_at_function.sql").write_text("SELECT 1;\n")
    bad = clinicdb(
        "check", "--migrations", str(database / "migrations"), "--seeds", str(database / "seeds")
    )
    assert bad.returncode == 1
    assert "FAILED   test_clinicdb_migrations_match_the_lock_file" in bad.stdout
    assert "003_updated_at_function.sql was edited after it was locked" in bad.stdout


def test_up_prints_a_working_dsn_and_down_stops_it(tmp_path):
    import uuid

    from pytest_clinicdb.config import default_cache_dir
    from pytest_clinicdb.server.cluster import ClusterDir

    from ..conftest import kept_clusters, postgres_processes

    # Unique: two sessions running this test at once must not share (and stop) one server.
    cache = default_cache_dir().parent / f"clinicdb-test-up-{uuid.uuid4().hex[:8]}"
    try:
        # --show-password: the DSN to connect with (without it the password is masked).
        up = clinicdb("up", "--cache-dir", str(cache), "--json", "--show-password")
        assert up.returncode == 0, up.stderr
        data = json.loads(up.stdout)
        assert data["database"] == "clinicdb_up"
        with psycopg.connect(data["dsn"]) as conn:
            assert conn.execute("SELECT count(*) FROM clinic.feature_flags").fetchone()[0] > 0
            conn.execute("CREATE TABLE my_notes (t text)")
            conn.commit()
        params = conninfo_to_dict(data["dsn"])
        password, port = params["password"], params["port"]
        again = clinicdb("up", "--cache-dir", str(cache))
        assert again.stdout.splitlines()[1:] == [
            f"postgresql://postgres:***@127.0.0.1:{port}/clinicdb_up",
            "password masked: add --show-password for the DSN to connect with",
            f"stop it with: clinicdb down --cache-dir {cache}",
        ]
        assert "database clinicdb_up (reused)" in again.stdout
        masked = json.loads(clinicdb("up", "--cache-dir", str(cache), "--json").stdout)
        assert masked["dsn"] == f"postgresql://postgres:***@127.0.0.1:{port}/clinicdb_up"
        assert password not in again.stdout + again.stderr + json.dumps(masked)
        shown = clinicdb("up", "--cache-dir", str(cache), "--show-password")
        assert shown.stdout.splitlines()[1] == data["dsn"]
        assert postgres_processes(str(cache)), "the server outlives the command"
        # Another process holds the cluster's lock for a moment (as the reaper does when it
        # looks): down waits for it instead of calling the server busy.  Meanwhile `up` still
        # keeps the server: were it unregistered before down has the lock, the reaper could
        # stop the server first, and down would say there was nothing to stop.
        cluster = ClusterDir(kept_clusters(cache)[0])
        with cluster.file_lock():
            waiting = subprocess.Popen(
                [sys.executable, "-m", "pytest_clinicdb.cli", "down", "--cache-dir", str(cache)],
                cwd=REPO,
                stdout=subprocess.PIPE,
                text=True,
            )
            time.sleep(2.0)  # down has started and waits for the lock
            assert waiting.poll() is None
            assert [u.id for u in cluster.live_users()] == ["up"]
        stdout = waiting.communicate(timeout=60)[0]
        assert waiting.returncode == 0 and stdout.startswith("stopped: "), stdout
        assert postgres_processes(str(cache)) == []
    finally:
        clinicdb("down", "--cache-dir", str(cache), "--clean")
        import shutil

        shutil.rmtree(cache, ignore_errors=True)
