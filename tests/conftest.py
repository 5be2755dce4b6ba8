"""Shared helpers of the plugin's own test suite.

Acceptance tests run pytest the way users do — ``pytester.runpytest_subprocess``
on a small project — each with a private cache directory, and look at what is
left afterwards: processes, directories and databases.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from pytest_clinicdb.binaries import probe, server_account
from pytest_clinicdb.config import default_cache_dir
from pytest_clinicdb.gc import reap_dead_runs
from pytest_clinicdb.runs import pid_alive
from pytest_clinicdb.server.cluster import CLUSTER_DIR_PREFIX, ClusterDir, stop_idle_clusters
from pytest_clinicdb.server.embedded import start_standalone

REPO = Path(__file__).resolve().parents[1]
#: Small projects in other teams' styles: test data, run by the acceptance tests through pytester.
collect_ignore = ["projects"]
PROJECTS = REPO / "tests" / "projects"


def copy_project(pytester: pytest.Pytester, name: str) -> Path:
    """One of ``tests/projects`` as the pytester project."""
    shutil.copytree(PROJECTS / name, pytester.path, dirs_exist_ok=True)
    return pytester.path


def clinicdb(cwd: Path, cache: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The ``clinicdb`` command in ``cwd``, with ``cache`` as its cache directory."""
    env = {**os.environ, "CLINICDB_CACHE_DIR": str(cache)}
    return subprocess.run(
        [sys.executable, "-m", "pytest_clinicdb.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _postgres(marker: str) -> Iterator[tuple[Path, list[bytes]]]:
    """The /proc entry and arguments of each running (not zombie) postgres process whose
    arguments mention ``marker``."""
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
            yield entry, args


def shm_mapped_by_postgres(marker: str) -> set[str]:
    """The POSIX shared memory segments (``/dev/shm/PostgreSQL.*``) that running postgres
    processes mentioning ``marker`` have mapped (a server with POSIX dynamic shared memory
    maps its control segment at start)."""
    found: set[str] = set()
    for entry, _ in _postgres(marker):
        try:
            maps = (entry / "maps").read_text()
        except OSError:
            continue
        found |= {line.split()[-1] for line in maps.splitlines() if " /dev/shm/PostgreSQL." in line}
    return found


def postgres_processes(marker: str) -> list[str]:
    """Command lines of running postgres processes whose arguments mention ``marker``."""
    return [" ".join(a.decode(errors="replace") for a in args) for _, args in _postgres(marker)]


def postgres_left(cache: Path) -> list[str]:
    """Command lines of the postgres processes of ``cache`` left after a run.  A released
    server shuts down on its own (pytest does not wait for it): it gets a few seconds."""
    wait_for(lambda: not postgres_processes(str(cache)), timeout=10)
    return postgres_processes(str(cache))


@pytest.fixture
def cache_dir() -> Iterator[Path]:
    """A private cache directory on the same filesystem as the default one."""
    path = default_cache_dir().parent / f"clinicdb-test-{uuid.uuid4().hex[:8]}"
    path.mkdir(parents=True)
    os.chmod(path, 0o755)
    yield path
    reap_dead_runs(path, keep="")
    stop_idle_clusters(path, skip=None, delete=True)
    shutil.rmtree(path, ignore_errors=True)


def wait_for(predicate: Callable[[], object], timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def kept_clusters(cache: Path) -> list[Path]:
    return sorted(p for p in cache.glob(f"{CLUSTER_DIR_PREFIX}*") if p.is_dir())


@contextlib.contextmanager
def lock_held_for_a_moment(cluster: Path, seconds: float = 1.0) -> Iterator[None]:
    """Another process's hold on ``cluster``'s lock, as the reaper takes it when it looks: taken
    before the body runs, let go after ``seconds`` (or when the body ends, if sooner)."""
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with ClusterDir(cluster).file_lock():
            held.set()
            release.wait(seconds)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(10), "the lock was not taken"
        yield
    finally:
        release.set()
        holder.join()


@contextlib.contextmanager
def kept_server(cache: Path, *, newest: bool = False) -> Iterator[psycopg.Connection[object]]:
    """An admin connection to the one kept cluster in ``cache`` (with ``newest``: the one
    last used), started just for a look.

    A server that was already running is left running; one started here is stopped.
    """
    if newest:
        root = max(kept_clusters(cache), key=lambda p: ClusterDir(p).meta().get("last_used") or 0)
    else:
        (root,) = kept_clusters(cache)
    account = server_account(None)
    bindir = Path(json.loads((root / "state.json").read_text())["bindir"])
    binaries = probe(bindir, "kept cluster")
    assert binaries is not None
    cluster = ClusterDir(root)
    _wait_while_stopping(cluster)  # a run's end asks the server to stop and does not wait
    was_running = cluster.running()
    info = start_standalone(root, binaries, account)
    try:
        with psycopg.connect(info.dsn, autocommit=True) as conn:
            yield conn
    finally:
        if not was_running:
            cluster.stop()


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _wait_while_stopping(cluster: ClusterDir, timeout: float = 30.0) -> None:
    """Wait for a server shutting down to exit (the status line of postmaster.pid says so),
    and then for its reaper: a reaper still looking would stop the server started here."""
    deadline = time.monotonic() + timeout
    while cluster.running() and time.monotonic() < deadline:
        try:
            lines = (cluster.data / "postmaster.pid").read_text().splitlines()
        except OSError:
            break
        if len(lines) < 8 or lines[7].strip() != "stopping":
            return  # running, not stopping: its reaper sees a live user or leaves it be
        time.sleep(0.02)
    try:
        reaper = int((cluster.root / "reaper.pid").read_text())
    except (OSError, ValueError):
        return
    while pid_alive(reaper) and time.monotonic() < deadline:
        time.sleep(0.02)


#: What the plugin keeps on a server between runs: templates and the checkpoints builds resume from.
KEPT = ("clinicdb_tpl_", "clinicdb_ckpt_")


def user_databases(conn: psycopg.Connection[object]) -> list[str]:
    """Names of a server's databases other than ``postgres``, ``template0`` and ``template1``."""
    rows = conn.execute(
        "SELECT datname FROM pg_database WHERE datname NOT IN ('postgres', 'template0', "
        "'template1') ORDER BY 1"
    ).fetchall()
    return [r[0] for r in rows]


def databases(cache: Path) -> list[str]:
    """Names of the databases in the kept cluster of ``cache`` (looked at after a run)."""
    with kept_server(cache) as conn:
        return user_databases(conn)


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

    def spawn(self, *args: str) -> subprocess.Popen[bytes]:
        """Start pytest on the project in the background (its own session, for signals)."""
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pytest",
                "-p",
                "no:cacheprovider",
                f"--clinicdb-cache-dir={self.cache_dir}",
                *args,
            ],
            cwd=self.path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            # Ctrl-C as a terminal sends it, also when this suite runs in a background job
            # (whose children inherit SIGINT ignored).
            preexec_fn=_default_sigint,
        )

    def leftovers(self) -> list[str]:
        """Run directories and postgres processes this project's runs left behind."""
        processes = postgres_left(self.cache_dir)
        return [p.name for p in self.cache_dir.glob("run-*")] + processes


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


@pytest.fixture
def external_server(cache_dir: Path) -> Iterator[tuple[str, str]]:
    """A server run for the test as a CI service would be: (superuser DSN, DSN of a role that
    may only create databases and is a member of clinic_app)."""
    from pytest_clinicdb.binaries import find_binaries, make_reachable

    account = server_account(None)
    binaries = make_reachable(find_binaries(None, "default"), account, cache_dir)
    # Beside the project's cache, not in it: the service is not the plugin's to clean up.
    cluster = ClusterDir(cache_dir.with_name("service-" + cache_dir.name))
    info = start_standalone(cluster.root, binaries, account)
    password = uuid.uuid4().hex
    try:
        with psycopg.connect(info.dsn, autocommit=True) as admin:
            admin.execute(f"CREATE ROLE app_ci LOGIN CREATEDB PASSWORD '{password}'")
            for role in ("clinic_app", "clinic_webhook_worker"):  # the clinic migrations grant
                admin.execute(f"CREATE ROLE {role} NOLOGIN")
                admin.execute(f"GRANT {role} TO app_ci")
        yield info.dsn, f"postgresql://app_ci:{password}@127.0.0.1:{info.tcp_port}/postgres"
    finally:
        cluster.destroy()
        shutil.rmtree(cluster.root, ignore_errors=True)
