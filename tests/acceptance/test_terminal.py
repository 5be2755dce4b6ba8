"""What a newcomer meets in the terminal: the header and summary of each kind of run, the
fixtures and the marker as pytest documents them, the plugin's own skips."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.acceptance

DEV_SEED = """
    DO $$ BEGIN
      IF current_setting('app.environment', true) IS DISTINCT FROM 'test' THEN
        RAISE EXCEPTION 'DEV/TEST ONLY';
      END IF;
    END $$;
    INSERT INTO app.items (name) VALUES ('sample') ON CONFLICT DO NOTHING;
"""
TESTS = """
    def test_base(clinic_db):
        assert clinic_db.execute("SELECT count(*) FROM app.flags").fetchone() == (2,)

    def test_dev(clinic_db_dev):
        assert clinic_db_dev.execute("SELECT count(*) FROM app.items").fetchone() == (1,)

    def test_fresh(clinic_db_fresh):
        clinic_db_fresh.execute("INSERT INTO app.items (name) VALUES ('mine')")
        clinic_db_fresh.commit()
"""


@pytest.fixture
def dev_project(project):
    project.seed("002_dev_seed.sql", DEV_SEED)
    project.tests(TESTS)
    return project


def ours(result: pytest.RunResult) -> list[str]:
    """The plugin's lines: header, summary and timings (indented lines belong to the one
    before)."""
    lines, inside = [], False
    for line in result.outlines:
        if line.startswith("clinicdb"):
            inside = True
            lines.append(line)
        elif inside and line.startswith("  "):
            lines.append(line)
        else:
            inside = False
    return lines


def said_once_without_contradiction(result: pytest.RunResult) -> list[str]:
    """The plugin's lines, after checking that none repeats and none contradicts another."""
    lines = ours(result)
    repeated = sorted({line for line in lines if lines.count(line) > 1})
    assert repeated == [], repeated
    assert len([line for line in lines if line.startswith("clinicdb: backend ")]) == 1
    servers = [line for line in lines if line.startswith("clinicdb: server ")]
    assert len(servers) == 1, servers
    started = ("new cluster", "started the kept cluster")
    assert not (
        "attached to the running server" in servers[0] and any(s in servers[0] for s in started)
    ), servers[0]
    for variant in ("base", "dev"):
        status = [line for line in lines if f"({variant}) reused" in line]
        if status:  # a reused template: nothing of it was built, loaded or created
            assert not [line for line in lines if f"({variant}) built" in line], lines
            assert not [line for line in lines if f"({variant}) rebuilt" in line], lines
    return lines


def test_cold_build_then_reuse(dev_project):
    cold = dev_project.run()
    cold.assert_outcomes(passed=3)
    lines = said_once_without_contradiction(cold)
    cold.stdout.fnmatch_lines(
        [
            "clinicdb: backend embedded, PostgreSQL *",
            "clinicdb: 2 migrations in database/migrations, system seed "
            "database/seeds/001_system_seed.sql; cache *",
            "clinicdb: template *: not built yet; reuse on",
        ]
    )
    cold.stdout.fnmatch_lines(
        [
            "clinicdb: server PostgreSQL * (new cluster *); data directory kept between runs",
            "clinicdb: template * (base) built in * s by main",
            "clinicdb: template * (dev) built in * s by main",
            "clinicdb: dev seed 002_dev_seed.sql loaded (DEV/TEST ONLY, app.environment=test, *)",
            "clinicdb: 1 server message(s) while building:",
            "  WARNING: system seed loaded [001_system_seed.sql]",
        ]
    )
    assert not [line for line in lines if "reused" in line or "kept from" in line], lines

    warm = dev_project.run()
    warm.assert_outcomes(passed=3)
    lines = said_once_without_contradiction(warm)
    warm.stdout.fnmatch_lines(
        [
            "clinicdb: template *: kept from an earlier run; reuse on",
            "clinicdb: server PostgreSQL * (*); data directory kept between runs",
            "clinicdb: template * (base) reused (built *)",
            "clinicdb: template * (dev) reused (built *)",
            "clinicdb: dev seed 002_dev_seed.sql in the reused dev template (DEV/TEST ONLY, "
            "loaded with app.environment=test by an earlier run)",
            "clinicdb: 1 server message(s) when an earlier run built the reused template(s):",
            "  WARNING: system seed loaded [001_system_seed.sql]",
        ]
    )
    (server,) = [line for line in lines if line.startswith("clinicdb: server ")]
    assert "new cluster" not in server
    claims = ("loaded (", "built in", "while building", "created", "disabled for the seed")
    assert [line for line in lines if any(c in line for c in claims)] == [], lines
    assert dev_project.leftovers() == []


def test_xdist_and_timings(dev_project):
    cold = dev_project.run("-n", "2", "--clinicdb-timings")
    cold.assert_outcomes(passed=3)
    lines = said_once_without_contradiction(cold)
    cold.stdout.fnmatch_lines(
        [
            "clinicdb: server PostgreSQL * (new cluster *); data directory kept between runs",
            "clinicdb: template * (base) built in * s by gw[01]",
            "clinicdb: template * (dev) built in * s by gw[01]",
            "clinicdb timings:",
        ]
    )
    timings = lines[lines.index("clinicdb timings:") :]
    for step in ("migration 001_schema.sql", "migration 002_flags.sql", "seed 001_system_seed"):
        assert len([line for line in timings if line.strip().startswith(step)]) == 1, timings
    servers = [line for line in timings if line.startswith("  server (")]
    starts = [line for line in servers if "new cluster" in line]
    assert len(starts) == 1, servers
    starter = re.match(r"  server \((gw\d)\)", starts[0])
    assert starter is not None
    for line in servers:  # the other worker joined the server this run's worker started
        if line is not starts[0]:
            assert line.endswith(f": attached to the server {starter.group(1)} started"), line

    warm = dev_project.run("-n", "2", "--clinicdb-timings")
    warm.assert_outcomes(passed=3)
    lines = said_once_without_contradiction(warm)
    timings = lines[lines.index("clinicdb timings:") :]
    assert not [line for line in timings if "built by" in line or "migration " in line], timings
    assert dev_project.leftovers() == []


def test_every_public_fixture_is_documented(pytester):
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--fixtures", "-v")
    out = result.outlines
    for name in (
        "clinic_postgres",
        "clinic_db",
        "clinic_dsn",
        "clinic_db_fresh",
        "clinic_db_dev",
        "clinic_db_async",
    ):
        heads = [i for i, line in enumerate(out) if re.match(rf"{name}( \[\w+ scope\])? -- ", line)]
        assert len(heads) == 1, (name, heads)
        doc = out[heads[0] + 1]
        assert doc.startswith("    ") and len(doc.strip()) > 20, (name, doc)
        assert "no docstring available" not in doc, name


def test_the_marker_is_listed_with_its_options(pytester):
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--markers")
    (line,) = [line for line in result.outlines if line.startswith("@pytest.mark.clinicdb(")]
    assert line.startswith(
        "@pytest.mark.clinicdb(dev_seed=False, role=None, settings=None): per-test options of "
        "pytest-clinicdb"
    ), line
    assert "dev_seed=True gives clinic_db, clinic_db_async, clinic_dsn and clinic_db_fresh" in line
    assert "role='clinic_app' with settings={'app.current_clinic_id': id} runs the whole" in line


AUDIT_SKIP = (
    "no audit table partitioned by range on a timestamp (name one with --clinicdb-audit-tables)"
)


def test_the_battery_without_audit_tables_skips_by_name_and_shows_no_plugin_source(project):
    """The small project has no audit table, no dev seed, no lock file and no tenants."""
    result = project.run("--clinicdb-check")
    result.assert_outcomes(passed=1, failed=1, skipped=6)
    out = result.stdout.str()
    assert "Traceback" not in out
    assert not re.search(r"pytest_clinicdb\W\w+\.py:\d+", out), "no line of the plugin's source"
    assert "def test_clinicdb" not in out
    result.stdout.fnmatch_lines(
        [
            "*_ test_clinicdb_migrations_match_the_lock_file _*",
            "migrations do not match the lock file: 1 problem(s)",
            "  - no lock file *migrations.lock",
            "        fix: run `clinicdb lock` and commit the file",
        ]
    )
    # Named without -rs, one line per reason, after the summary of the run's databases.
    result.stdout.fnmatch_lines(
        [
            "clinicdb: 3 test(s) skipped by pytest-clinicdb: no dev seed: there is no "
            "002_*.sql in the seeds folder database/seeds "
            "(first: test_clinicdb_dev_seed_guard_refuses_outside_development_and_test)",
            f"clinicdb: 2 test(s) skipped by pytest-clinicdb: {AUDIT_SKIP} "
            "(first: test_clinicdb_audit_partitions_cover_now_and_the_horizon)",
            "clinicdb: 1 test(s) skipped by pytest-clinicdb: tenant isolation is not configured "
            "(--clinicdb-tenant-role, --clinicdb-tenant-setting and --clinicdb-tenants) "
            "(first: test_clinicdb_tenants_are_isolated)",
        ]
    )

    listed = project.run("--clinicdb-check", "-k", "partitions or default", "-rs")
    listed.assert_outcomes(skipped=2)
    listed.stdout.fnmatch_lines([f"SKIPPED [2] pytest-clinicdb: {AUDIT_SKIP}"])
    assert "skipped by pytest-clinicdb" not in listed.stdout.str(), "said once, by pytest"


def test_a_dev_seed_switched_off_is_named_at_the_end(project):
    result = project.run("--clinicdb-check", "--clinicdb-dev-seed-file=none", "-k", "dev_seed")
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(
        [
            "clinicdb: 2 test(s) skipped by pytest-clinicdb: no dev seed: it is switched off "
            "(--clinicdb-dev-seed-file = none) "
            "(first: test_clinicdb_dev_seed_guard_refuses_outside_development_and_test)"
        ]
    )
