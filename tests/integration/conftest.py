from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from pytest_clinicdb._state import context_of
from pytest_clinicdb.binaries import find_binaries, make_reachable, server_account
from pytest_clinicdb.config import default_cache_dir
from pytest_clinicdb.databases import drop_database
from pytest_clinicdb.server import ServerInfo
from pytest_clinicdb.server.cluster import ClusterDir
from pytest_clinicdb.server.embedded import start_standalone


@pytest.fixture(scope="module")
def private_server(request: pytest.FixtureRequest) -> Iterator[ServerInfo]:
    """A server of the module's own (stopped and deleted after it): for tests that look at
    every database, or at the cluster-wide state, which other tests' builds would change."""
    cache = default_cache_dir().parent / f"clinicdb-test-{uuid.uuid4().hex[:8]}"
    cache.mkdir(parents=True)
    os.chmod(cache, 0o755)
    account = server_account(None)
    settings = context_of(request.config).settings  # whatever the backend: a local server
    found = find_binaries(settings.pg_bin, "--clinicdb-pg-bin", settings.pg_version)
    binaries = make_reachable(found, account, cache)
    cluster = ClusterDir(cache / "cluster")
    try:
        yield start_standalone(cluster.root, binaries, account)
    finally:
        cluster.destroy()
        shutil.rmtree(cache, ignore_errors=True)


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
