"""The seed author's battery: every playbook rule as one test, against your migrations and seeds.

Run it alone with ``pytest --clinicdb-check``, or with your suite by importing
it into any test module::

    from pytest_clinicdb.battery import *  # noqa: F403

Each check is its own test item, named after the rule it checks.  They use the
plugin's configuration (``--clinicdb-migrations``, ``--clinicdb-seeds`` …) and
fresh clones of the template, so they change nothing else.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from ._state import engine_of
from .asserts import (
    assert_audit_partitions_cover_horizon,
    assert_migrations_match_lock,
    assert_no_rows_in_default_partition,
    assert_seed_idempotent,
    assert_seed_refuses,
    assert_triggers_enabled,
)
from .errors import ClinicDBError

__all__ = [
    "test_clinicdb_audit_partitions_cover_now_and_the_horizon",
    "test_clinicdb_dev_seed_guard_refuses_outside_development_and_test",
    "test_clinicdb_dev_seed_is_idempotent",
    "test_clinicdb_migrations_match_the_lock_file",
    "test_clinicdb_no_audited_row_in_a_default_partition",
    "test_clinicdb_system_seed_is_idempotent",
    "test_clinicdb_triggers_are_enabled_after_seeding",
]

TRIGGER_SCHEMAS = ("clinic", "booking", "webhook")


def _seed(request: pytest.FixtureRequest, which: str) -> Path:
    engine = engine_of(request.config)
    try:
        seed = engine.system_seed() if which == "001" else engine.dev_seed()
    except ClinicDBError as exc:
        pytest.skip(f"no {which} seed: {exc.message}")
    if seed is None:
        pytest.skip(f"no {which} seed: seeds are disabled (--clinicdb-seeds none)")
    return seed


def _autocommit(dsn: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        yield conn


def test_clinicdb_migrations_match_the_lock_file(request: pytest.FixtureRequest) -> None:
    """Historical migrations match ``migrations.lock``: no edit, removal, rename or reordering."""
    assert_migrations_match_lock(engine_of(request.config).settings.migrations)


def test_clinicdb_system_seed_is_idempotent(
    request: pytest.FixtureRequest, clinic_dsn: str
) -> None:
    """Seed 001 runs again on a database that has it and changes nothing."""
    seed = _seed(request, "001")
    for conn in _autocommit(clinic_dsn):
        assert_seed_idempotent(conn, seed, exclude_columns=["updated_at"])


def test_clinicdb_dev_seed_guard_refuses_outside_development_and_test(
    request: pytest.FixtureRequest, clinic_dsn: str
) -> None:
    """Seed 002 raises when app.environment is unset, empty, production or staging."""
    assert_seed_refuses(clinic_dsn, _seed(request, "002"))


def test_clinicdb_dev_seed_is_idempotent(request: pytest.FixtureRequest, clinic_dsn: str) -> None:
    """Seed 002 (app.environment=test) runs twice with the same result."""
    seed = _seed(request, "002")
    for conn in _autocommit(clinic_dsn):
        assert_seed_idempotent(conn, seed, settings={"app.environment": "test"})


def test_clinicdb_triggers_are_enabled_after_seeding(
    request: pytest.FixtureRequest, clinic_db_dev: psycopg.Connection[Any]
) -> None:
    """After the dev-seed wrapper loaded 002, no trigger is left disabled."""
    _seed(request, "002")
    assert_triggers_enabled(clinic_db_dev, TRIGGER_SCHEMAS)


def test_clinicdb_audit_partitions_cover_now_and_the_horizon(
    clinic_db: psycopg.Connection[Any],
) -> None:
    """The audit log has range partitions for this month and the next three."""
    assert_audit_partitions_cover_horizon(clinic_db, months_ahead=3)


def test_clinicdb_no_audited_row_in_a_default_partition(
    request: pytest.FixtureRequest, clinic_db_dev: psycopg.Connection[Any]
) -> None:
    """With both seeds loaded, no audit row sits in a DEFAULT partition."""
    _seed(request, "002")
    assert_no_rows_in_default_partition(clinic_db_dev)
