"""Incremental builds: a changed or new migration re-applies only from the first changed file.

The result must be the database a build from scratch makes: both are compared
by catalog and data fingerprints (every section, every table's rows).
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pytest_clinicdb import templates
from pytest_clinicdb.config import resolve
from pytest_clinicdb.databases import create_database, drop_database
from pytest_clinicdb.errors import TemplateBuildError
from pytest_clinicdb.fingerprint import differences, fingerprint
from pytest_clinicdb.project import Project
from pytest_clinicdb.runs import RunRef
from pytest_clinicdb.templates import Builder, TemplateInfo

from ..conftest import REPO

pytestmark = pytest.mark.integration


@pytest.fixture
def server(private_server):
    """A server of this module's own: a checkpoint is resumed only while the cluster-wide state
    (roles …) is as it was, and other tests' builds on a shared server change it."""
    return private_server


def project_copy(tmp_path: Path) -> Path:
    """The clinic database, made unique (its own checkpoints) by a comment in the first file."""
    root = tmp_path / "db"
    shutil.copytree(REPO / "database", root)
    first = sorted((root / "migrations").glob("*.sql"))[0]
    first.write_text(f"-- copy {uuid.uuid4().hex}\n" + first.read_text())
    return root


def builder(root: Path, *, rebuild: bool = False, detach: Any = None) -> Builder:
    given = {
        "migrations": [str(root / "migrations")],
        "seeds": str(root / "seeds"),
        "rebuild": rebuild,
    }
    settings = resolve(given.get, lambda name: None, env={}, rootdir=root)
    return Builder(Project(settings), settings, RunRef.new(), detach=detach)


def ours(server, prefix: str) -> list[str]:
    with psycopg.connect(server.dsn, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s ORDER BY 1", (prefix + "%",)
        ).fetchall()
    return [r[0] for r in rows]


def scratch(root: Path, server) -> TemplateInfo:
    """The same chain built without any checkpoint (a server-side copy of what a new server
    would do): checkpoints are looked for, none is found."""
    b = builder(root)
    b.find_checkpoint = lambda server: None  # type: ignore[method-assign]
    return b.base(server)


#: Set by now() and gen_random_uuid() when a seed runs: two builds differ there by design.
VOLATILE = ("id", "created_at", "updated_at")


def fingerprint_of(server, template: TemplateInfo) -> dict[str, str]:
    name = f"clinicdb_fp_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server.dsn, autocommit=True) as admin:
        create_database(admin, name, template.name, server.major)
        try:
            with psycopg.connect(server.dsn_for(name)) as conn:
                return fingerprint(conn, exclude_columns=VOLATILE)
        finally:
            drop_database(admin, name)


def drop_templates(server, *names: str) -> None:
    with psycopg.connect(server.dsn, autocommit=True) as admin:
        for name in names:
            drop_database(admin, name)


def test_editing_the_newest_migration_resumes_from_the_checkpoint_before_it(server, tmp_path):
    root = project_copy(tmp_path)
    migrations = sorted((root / "migrations").glob("*.sql"))
    first = builder(root).base(server)
    assert (first.built, first.resumed) == (True, 0)
    assert len(first.checkpoints) == 2  # after n-1 and after n

    migrations[-1].write_text(
        migrations[-1].read_text() + "\nCOMMENT ON TABLE clinic.patients IS 'edited';\n"
    )
    edited = builder(root).base(server)
    assert (edited.built, edited.resumed) == (True, len(migrations) - 1)
    applied = [k for k in edited.timings if k.startswith("migration ")]
    assert applied == [f"migration {migrations[-1].name}"]

    # The same chain from scratch is the same database.
    incremental = fingerprint_of(server, edited)
    drop_templates(server, edited.name)
    full = scratch(root, server)
    assert (full.built, full.resumed) == (True, 0)
    assert differences(incremental, fingerprint_of(server, full)) == []
    # ... and the fingerprint does see a difference when there is one.
    drop_templates(server, full.name)
    migrations[-1].write_text(migrations[-1].read_text().replace("'edited'", "'changed'"))
    other = builder(root).base(server)
    assert differences(incremental, fingerprint_of(server, other)) == [
        "comments",
        "rows of clinicdb.migrations",  # the changed file's checksum
    ]


def test_a_new_migration_and_a_seed_edit_apply_only_what_changed(server, tmp_path):
    root = project_copy(tmp_path)
    count = len(list((root / "migrations").glob("*.sql")))
    builder(root).base(server)

    (root / "migrations" / "999_late_column.sql").write_text(
        "ALTER TABLE clinic.clinics ADD COLUMN motto text;\n"
    )
    appended = builder(root).base(server)
    assert appended.resumed == count
    assert [k for k in appended.timings if k.startswith("migration ")] == [
        "migration 999_late_column.sql"
    ]

    seed = next((root / "seeds").glob("001_*.sql"))
    seed.write_text(seed.read_text() + "\n-- reviewed\n")
    seeded = builder(root).base(server)
    assert seeded.built and seeded.resumed == count + 1
    assert [k for k in seeded.timings if k.startswith("migration ")] == []
    assert f"seed {seed.name}" in seeded.timings
    drop_templates(server, seeded.name)
    full = scratch(root, server)
    assert differences(fingerprint_of(server, full), fingerprint_of(server, seeded)) == []


def test_a_checkpoint_is_not_resumed_once_the_cluster_wide_state_moved_on(server, tmp_path):
    root = project_copy(tmp_path)
    builder(root).base(server)
    role = f"clinicdb_test_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server.dsn, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {role}")
    try:
        migrations = sorted((root / "migrations").glob("*.sql"))
        migrations[-1].write_text(migrations[-1].read_text() + "\n-- edited\n")
        assert builder(root).find_checkpoint(server) is None
        rebuilt = builder(root).base(server)
        assert rebuilt.resumed == 0
    finally:
        with psycopg.connect(server.dsn, autocommit=True) as admin:
            admin.execute(f"DROP ROLE {role}")


def test_the_checkpoint_of_an_edit_is_made_beside_the_build_and_a_seed_edit_resumes_there(
    server, tmp_path
):
    """The plugin's builds (detached) return before the checkpoint after the edited migration
    is made; once it is, a seed edit re-applies no migration, and the result is the database a
    build from scratch makes."""
    root = project_copy(tmp_path)
    migrations = sorted((root / "migrations").glob("*.sql"))
    n = len(migrations)
    builder(root).base(server)
    migrations[-1].write_text(
        migrations[-1].read_text() + "\nCOMMENT ON TABLE clinic.patients IS 'edited';\n"
    )
    handed: list[TemplateInfo] = []
    b = builder(root, detach=handed.append)
    edited = b.base(server)
    assert (edited.built, edited.resumed) == (True, n - 1)
    assert [k for k in edited.timings if k.startswith("checkpoint")] == []  # not in line
    assert handed == [edited]
    assert edited.finish_beside(), "the checkpoint is made beside the build"
    assert list(edited.timings)[-1] == f"checkpoint after {n} migrations (while the tests ran)"
    key = b.project.prefix_keys(server.major)[n]
    assert f"clinicdb_ckpt_{key}" in ours(server, "clinicdb_ckpt_")
    assert key in edited.checkpoints
    assert ours(server, "clinicdb_build_") == [], "the checkpoint was renamed, not copied"

    seed = next((root / "seeds").glob("001_*.sql"))
    seed.write_text(seed.read_text() + "\n-- reviewed\n")
    seeded = builder(root).base(server)
    assert (seeded.built, seeded.resumed) == (True, n)
    assert [k for k in seeded.timings if k.startswith("migration ")] == []
    drop_templates(server, seeded.name)
    full = scratch(root, server)
    assert differences(fingerprint_of(server, full), fingerprint_of(server, seeded)) == []


def test_a_failed_build_leaves_no_checkpoint_half_made_beside_it(server, tmp_path):
    root = project_copy(tmp_path)
    migrations = sorted((root / "migrations").glob("*.sql"))
    builder(root).base(server)
    migrations[-1].write_text(migrations[-1].read_text() + "\n-- edited\n")
    seed = next((root / "seeds").glob("001_*.sql"))
    seed.write_text(seed.read_text() + "\nINSERT INTO clinic.no_such_table VALUES (1);\n")
    with pytest.raises(TemplateBuildError, match="no_such_table"):
        builder(root).base(server)
    assert ours(server, "clinicdb_build_") == []


def test_newest_migrations_that_reach_the_cluster_are_checkpointed_in_line(server, tmp_path):
    """A role made in a DO block, as idempotent migrations do: a second session running it at
    the same time could collide, so the resumed build copies its checkpoint itself."""
    root = project_copy(tmp_path)
    count = len(list((root / "migrations").glob("*.sql")))
    builder(root).base(server)
    role = f"clinicdb_test_{uuid.uuid4().hex[:8]}"
    (root / "migrations" / "999_reporting_role.sql").write_text(
        "DO $$\nBEGIN\n"
        f"  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN\n"
        f"    CREATE ROLE {role} NOLOGIN;\n"
        "  END IF;\nEND\n$$;\n"
        f"GRANT USAGE ON SCHEMA clinic TO {role};\n"
    )
    try:
        appended = builder(root, detach=print).base(server)
        assert appended.resumed == count
        assert not appended.beside
        assert f"checkpoint after {count + 1} migrations" in appended.timings
    finally:
        drop_templates(server, *ours(server, "clinicdb_tpl_"), *ours(server, "clinicdb_ckpt_"))
        with psycopg.connect(server.dsn, autocommit=True) as admin:
            admin.execute(f"DROP ROLE IF EXISTS {role}")


def test_slow_pending_migrations_are_checkpointed_in_line(server, tmp_path, monkeypatch):
    """Applying a slow migration once more beside the build would cost more than one copy."""
    root = project_copy(tmp_path)
    migrations = sorted((root / "migrations").glob("*.sql"))
    builder(root).base(server)
    migrations[-1].write_text(migrations[-1].read_text() + "\n-- edited\n")
    monkeypatch.setattr(templates, "BESIDE_MAX_SECONDS", 0.0)  # every migration is slow now
    edited = builder(root, detach=print).base(server)
    assert edited.resumed == len(migrations) - 1
    assert not edited.beside
    assert f"checkpoint after {len(migrations)} migrations" in edited.timings


def test_a_checkpoint_being_made_beside_is_cancelled_and_leaves_nothing(server, tmp_path):
    """An interrupted run does not wait for it: cancelled, its database dropped."""
    root = project_copy(tmp_path)
    migrations = sorted((root / "migrations").glob("*.sql"))
    builder(root).base(server)
    # Quick enough to be made beside (under BESIDE_MAX_SECONDS), slow enough to be caught.
    migrations[-1].write_text(migrations[-1].read_text() + "\nSELECT pg_sleep(0.3);\n")
    b = builder(root, detach=print)
    edited = b.base(server)
    assert edited.beside, "made beside the build"
    assert edited.finish_beside(cancel=True)
    key = b.project.prefix_keys(server.major)[len(migrations)]
    assert f"clinicdb_ckpt_{key}" not in ours(server, "clinicdb_ckpt_")
    assert key not in edited.checkpoints
    assert not [k for k in edited.timings if k.startswith("checkpoint")]
    assert not [n for n in edited.notes if "checkpoint" in n], "a cancel is no failure to report"
    assert ours(server, "clinicdb_build_") == []
