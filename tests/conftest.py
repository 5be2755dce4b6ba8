"""Shared helpers of the plugin's own test suite.

Acceptance tests run pytest the way users do — ``pytester.runpytest_subprocess``
on a small project — each with a private cache directory, and look at what is
left afterwards: processes, directories and databases.
"""

from __future__ import annotations

import os
import shutil
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_clinicdb.config import default_cache_dir
from pytest_clinicdb.engine import reap_dead_runs

REPO = Path(__file__).resolve().parents[1]


def postgres_processes(marker: str) -> list[str]:
    """Command lines of running postgres processes whose arguments mention ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            continue
        if args and args[0].endswith(b"postgres") and any(marker.encode() in a for a in args):
            found.append(" ".join(a.decode(errors="replace") for a in args))
    return found


@pytest.fixture
def cache_dir() -> Iterator[Path]:
    """A private cache directory on the same filesystem as the default one."""
    path = default_cache_dir().parent / f"clinicdb-test-{uuid.uuid4().hex[:8]}"
    path.mkdir(parents=True)
    os.chmod(path, 0o755)
    yield path
    reap_dead_runs(path, keep="")
    shutil.rmtree(path, ignore_errors=True)


class Project:
    """A throw-away user project: migrations, seeds, tests, and a way to run pytest on it."""

    def __init__(self, pytester: pytest.Pytester, cache_dir: Path) -> None:
        self.pytester = pytester
        self.path = pytester.path
        self.cache_dir = cache_dir
        self.migrations = self.path / "database" / "migrations"
        self.seeds = self.path / "database" / "seeds"
        self.migrations.mkdir(parents=True)
        self.seeds.mkdir(parents=True)

    def migration(self, name: str, sql: str) -> Path:
        path = self.migrations / name
        path.write_text(textwrap.dedent(sql).lstrip())
        return path

    def seed(self, name: str, sql: str) -> Path:
        path = self.seeds / name
        path.write_text(textwrap.dedent(sql).lstrip())
        return path

    def tests(self, source: str, name: str = "test_project") -> None:
        self.pytester.makepyfile(**{name: textwrap.dedent(source)})

    def run(self, *args: str) -> pytest.RunResult:
        return self.pytester.runpytest_subprocess(
            "-p", "no:cacheprovider", f"--clinicdb-cache-dir={self.cache_dir}", *args
        )

    def leftovers(self) -> list[str]:
        """Run directories and postgres processes this project's runs left behind."""
        dirs = [p.name for p in self.cache_dir.glob("run-*")]
        return dirs + postgres_processes(str(self.cache_dir))


SMALL_SCHEMA = {
    "001_schema.sql": """
        -- the app schema
        CREATE EXTENSION IF NOT EXISTS citext;
        CREATE SCHEMA app;
        CREATE TABLE app.items (id serial PRIMARY KEY, name citext NOT NULL UNIQUE);
    """,
    "002_flags.sql": """
        CREATE TABLE app.flags (key text PRIMARY KEY, enabled boolean NOT NULL);
    """,
}
SMALL_SEED = """
    INSERT INTO app.flags VALUES ('new_ui', true), ('beta', false) ON CONFLICT (key) DO NOTHING;
    DO $$ BEGIN RAISE WARNING 'system seed loaded'; END $$;
"""


@pytest.fixture
def project(pytester: pytest.Pytester, cache_dir: Path) -> Project:
    """A project with a two-file schema and a system seed."""
    proj = Project(pytester, cache_dir)
    for name, sql in SMALL_SCHEMA.items():
        proj.migration(name, sql)
    proj.seed("001_system_seed.sql", SMALL_SEED)
    return proj
