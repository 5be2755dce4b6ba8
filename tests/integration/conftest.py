from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest

from pytest_clinicdb.databases import drop_database
from pytest_clinicdb.server import ServerInfo


@pytest.fixture
def empty_db(clinic_postgres: ServerInfo) -> Iterator[psycopg.Connection[object]]:
    """An autocommit connection to a brand-new empty database (dropped afterwards)."""
    name = f"clinicdb_scratch_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(clinic_postgres.dsn, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            with psycopg.connect(clinic_postgres.dsn_for(name), autocommit=True) as conn:
                conn.full_dsn = clinic_postgres.dsn_for(name)  # type: ignore[attr-defined]
                yield conn
        finally:
            drop_database(admin, name)
