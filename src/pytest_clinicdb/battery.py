"""The seed author's battery: every playbook rule as one test, against your migrations and seeds.

Run it alone with ``pytest --clinicdb-check``, or with your suite by importing
it into any test module::

    from pytest_clinicdb.battery import *  # noqa: F403

Each check is its own test item, named after the rule it checks.  They use the
plugin's configuration (``--clinicdb-migrations``, ``--clinicdb-seeds`` …) and
fresh clones of the template, so they change nothing else.  A rule about
something the project does not have (no dev seed, no partitioned audit table)
is skipped with the reason.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import pytest

from ._state import context_of
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
    "test_clinicdb_tenants_are_isolated",
    "test_clinicdb_triggers_are_enabled_after_seeding",
]


F = TypeVar("F", bound=Callable[..., None])


def _rule(test: F) -> F:
    """A broken rule fails with its findings alone: the fix is in the user's migrations and
    seeds, so a traceback through the battery's source would only hide it."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        try:
            test(*args, **kwargs)
        except (AssertionError, ClinicDBError) as exc:
            findings = str(exc)
        else:
            return
        pytest.fail(findings, pytrace=False)  # outside the except: no chained traceback

    return run  # type: ignore[return-value]


def _system_seed(request: pytest.FixtureRequest) -> Path:
    seed = context_of(request.config).project.system_seed
    if seed is None:
        pytest.skip(
            "no system seed configured (--clinicdb-system-seed, or 001_*.sql in the seeds folder)"
        )
    return seed


def _dev_seed(request: pytest.FixtureRequest) -> Path:
    project = context_of(request.config).project
    try:
        return project.dev_seed()
    except ClinicDBError:
        pytest.skip(f"no dev seed: {project.no_dev_seed()}")


def _audit_tables(request: pytest.FixtureRequest, conn: psycopg.Connection[Any]) -> list[str]:
    from .partitions import resolve_audit_tables

    tables = resolve_audit_tables(conn, context_of(request.config).settings.audit_tables)
    if not tables:
        pytest.skip(
            "no audit table partitioned by range on a timestamp "
            "(name one with --clinicdb-audit-tables)"
        )
    return tables


def _autocommit(dsn: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        yield conn


@_rule
def test_clinicdb_migrations_match_the_lock_file(request: pytest.FixtureRequest) -> None:
    """Historical migrations match ``migrations.lock``: no edit, removal, rename or reordering."""
    assert_migrations_match_lock(list(context_of(request.config).settings.migrations))


@_rule
def test_clinicdb_system_seed_is_idempotent(
    request: pytest.FixtureRequest, clinic_dsn: str
) -> None:
    """The system seed runs again on a database that has it and changes nothing."""
    seed = _system_seed(request)
    schemas = context_of(request.config).settings.schemas
    for conn in _autocommit(clinic_dsn):
        assert_seed_idempotent(conn, seed, exclude_columns=["updated_at"], schemas=schemas)


@_rule
def test_clinicdb_dev_seed_guard_refuses_outside_development_and_test(
    request: pytest.FixtureRequest, clinic_dsn: str
) -> None:
    """The dev seed raises when app.environment is unset, empty, production or staging."""
    assert_seed_refuses(clinic_dsn, _dev_seed(request))


@_rule
def test_clinicdb_dev_seed_is_idempotent(request: pytest.FixtureRequest, clinic_dsn: str) -> None:
    """The dev seed (app.environment=test) runs twice with the same result, loaded as the
    dev-seed wrapper loads it (audit triggers disabled)."""
    from .partitions import resolve_audit_tables
    from .seeds import audit_triggers, schemas_or_all

    seed = _dev_seed(request)
    s = context_of(request.config).settings
    for conn in _autocommit(clinic_dsn):
        audited = audit_triggers(
            conn, schemas_or_all(conn, s.schemas), resolve_audit_tables(conn, s.audit_tables)
        )
        triggers = [p for p in audited if s.dev_seed_tables is None or p[0] in s.dev_seed_tables]
        assert_seed_idempotent(
            conn, seed, settings={"app.environment": "test"}, schemas=s.schemas, triggers=triggers
        )


@_rule
def test_clinicdb_triggers_are_enabled_after_seeding(request: pytest.FixtureRequest) -> None:
    """After the dev-seed wrapper loaded the dev seed, no trigger is left disabled."""
    _dev_seed(request)
    conn = request.getfixturevalue("clinic_db_dev")
    assert_triggers_enabled(conn, context_of(request.config).settings.schemas)


@_rule
def test_clinicdb_audit_partitions_cover_now_and_the_horizon(
    request: pytest.FixtureRequest, clinic_db: psycopg.Connection[Any]
) -> None:
    """The audit tables have range partitions for this month and the next three — made by the
    migrations and the project's maintenance function, as in production (test-only partitions
    do not count)."""
    for table in _audit_tables(request, clinic_db):
        assert_audit_partitions_cover_horizon(
            clinic_db, months_ahead=3, table=table, production=True
        )


@_rule
def test_clinicdb_no_audited_row_in_a_default_partition(request: pytest.FixtureRequest) -> None:
    """With the seeds loaded, no audit row sits in a DEFAULT partition."""
    try:
        context_of(request.config).project.dev_seed()
        conn = request.getfixturevalue("clinic_db_dev")
    except ClinicDBError:
        conn = request.getfixturevalue("clinic_db")
    for table in _audit_tables(request, conn):
        assert_no_rows_in_default_partition(conn, table)


_QUERY_START = ("select", "with", "values", "table")


@_rule
def test_clinicdb_tenants_are_isolated(request: pytest.FixtureRequest) -> None:
    """Acting as the application role for one tenant, no other tenant's row is visible or
    writable, and every table that role reads has row-level security unless shared by design
    (--clinicdb-tenant-role, --clinicdb-tenant-setting, --clinicdb-tenants)."""
    from .asserts import assert_tenant_isolation
    from .errors import CheckError

    s = context_of(request.config).settings
    if not (s.tenant_role and s.tenant_setting and s.tenants):
        pytest.skip(
            "tenant isolation is not configured (--clinicdb-tenant-role, "
            "--clinicdb-tenant-setting and --clinicdb-tenants)"
        )
    try:
        context_of(request.config).project.dev_seed()
        conn = request.getfixturevalue("clinic_db_dev")
    except ClinicDBError:
        conn = request.getfixturevalue("clinic_db")
    query = s.tenants.strip()
    tenants: str | list[str] = (
        query if query.lower().startswith(_QUERY_START) else [t.strip() for t in query.split(",")]
    )
    try:
        assert_tenant_isolation(
            conn,
            role=s.tenant_role,
            setting=s.tenant_setting,
            tenants=tenants,
            shared=s.tenant_shared,
            schemas=s.schemas,
        )
    except CheckError as exc:
        pytest.skip(f"tenant isolation cannot be checked: {exc.message}")
