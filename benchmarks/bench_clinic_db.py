"""pytest-clinicdb against pytest-postgresql: the same tests on the same schema, in one run.

Not part of the test suite.  Generates throw-away projects with N tests each
against this repository's clinic database (17 migrations + seed 001) and runs
every variant in a fresh pytest process, side by side:

- ``baseline``            a test that uses no database (pytest's own cost);
- ``clinic_db cold``      an empty cache: initdb, migrations, template;
- ``clinic_db warm``      the same cache again (reuse: nothing is rebuilt);
- ``clinic_db_fresh``     a clone of the template per test (warm);
- ``pytest-postgresql``   10.x defaults: a new database from its template per test;
- ``pytest-postgresql tuned``  fsync/synchronous_commit/full_page_writes off, basetemp on tmpfs.

Per-test overhead = median of (setup + teardown) as pytest reports them, minus
the baseline's.  Start-up = from pytest's session start to the first test's
call.  Run::

    python benchmarks/bench_clinic_db.py            # 200 tests per variant
    python benchmarks/bench_clinic_db.py -n 50 --skip-defaults

pytest-postgresql runs ``pg_ctl`` itself, which refuses root: run as root, its
variants run as the same unprivileged account pytest-clinicdb uses.  If that
account cannot run this interpreter (a venv under /root), the script makes a
venv it can run, from ``--pp-python`` or the system ``python3``, with the
pytest-postgresql version installed here (kept beside the cache for next time).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pytest_clinicdb.binaries import find_binaries, run_as_kwargs, server_account
from pytest_clinicdb.config import default_cache_dir

REPO = Path(__file__).resolve().parents[1]
MIGRATIONS = REPO / "database" / "migrations"
SEED = next((REPO / "database" / "seeds").glob("001_*.sql"))
SPEED = "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"

RECORDER = """
import json, os, time

_t0 = None
_first_call = None
_phases = {}

def pytest_sessionstart(session):
    global _t0
    _t0 = time.perf_counter()

def pytest_runtest_logreport(report):
    global _first_call
    if report.when == "call" and _first_call is None:
        _first_call = time.perf_counter()
    _phases.setdefault(report.nodeid, {})[report.when] = report.duration

def pytest_sessionfinish(session):
    with open(os.environ["BENCH_OUT"], "w") as f:
        json.dump({"startup": (_first_call or 0) - _t0, "phases": _phases}, f)
"""

INSERT = "INSERT INTO clinic.clinics (name, slug) VALUES ('c', 'c{i}')"
TESTS = {
    "baseline": "def test_{i}():\n    assert True\n",
    "clinic_db": f'def test_{{i}}(clinic_db):\n    clinic_db.execute("{INSERT}")\n',
    "clinic_db_fresh": (
        "def test_{i}(clinic_db_fresh):\n"
        f'    clinic_db_fresh.execute("{INSERT}")\n'
        "    clinic_db_fresh.commit()\n"
    ),
    "postgresql": f'def test_{{i}}(postgresql):\n    postgresql.execute("{INSERT}")\n',
}


def write_project(path: Path, tests: str, count: int, ini: str) -> None:
    path.mkdir(parents=True)
    (path / "conftest.py").write_text(RECORDER)
    (path / "test_bench.py").write_text("".join(TESTS[tests].format(i=i) for i in range(count)))
    (path / "pytest.ini").write_text("[pytest]\n" + ini)
    os.chmod(path, 0o777)


def account_python(base: str | None) -> str:
    """An interpreter with pytest-postgresql that the server account can run."""
    account = server_account(None)
    if account is None:
        return sys.executable
    probe = [sys.executable, "-c", "import pytest_postgresql, psycopg"]
    try:
        kwargs = run_as_kwargs(account)
        if subprocess.run(probe, check=False, capture_output=True, **kwargs).returncode == 0:
            return sys.executable
    except PermissionError:
        pass
    from importlib.metadata import version

    venv = default_cache_dir().parent / f"clinicdb-bench-venv-{version('pytest-postgresql')}"
    python = venv / "bin" / "python"
    if not python.exists():
        base = base or shutil.which("python3", path="/usr/local/bin:/usr/bin") or "python3"
        print(f"making {venv} for pytest-postgresql (runs as {account.name}) ...", flush=True)
        subprocess.run([base, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "-q",
                f"pytest-postgresql=={version('pytest-postgresql')}",
                f"pytest=={version('pytest')}",
                f"psycopg[binary]=={version('psycopg')}",
            ],
            check=True,
        )
    return str(python)


def run(
    path: Path, *args: str, as_account: bool = False, python: str = sys.executable
) -> dict[str, float]:
    out = path / "result.json"
    account = server_account(None) if as_account else None
    started = time.perf_counter()
    proc = subprocess.run(
        [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=path,
        env={**os.environ, "BENCH_OUT": str(out), "HOME": str(path)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        check=False,
        **run_as_kwargs(account),
    )
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"variant in {path} failed:\n{proc.stdout.decode()[-3000:]}")
    data = json.loads(out.read_text())
    phases = list(data["phases"].values())
    overheads = [p.get("setup", 0) + p.get("teardown", 0) for p in phases]
    # The first test pays for the server and the template: it is start-up, not per test.
    return {
        "startup_s": data["startup"],
        "overhead_ms": statistics.median(overheads[1:]) * 1000,
        "wall_s": wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=200, help="tests per variant (default 200)")
    parser.add_argument("--pg-bin", type=Path, help="PostgreSQL bin directory for both plugins")
    parser.add_argument(
        "--skip-defaults", action="store_true", help="skip pytest-postgresql with its defaults"
    )
    parser.add_argument("--pp-python", help="base interpreter for pytest-postgresql's venv")
    args = parser.parse_args()
    pp_python = account_python(args.pp_python)
    bindir = find_binaries(args.pg_bin, "--pg-bin" if args.pg_bin else "default").bindir
    work = Path(tempfile.mkdtemp(prefix="clinicdb-bench-", dir=default_cache_dir().parent))
    os.chmod(work, 0o777)
    cache = work / "cache"
    clinic_ini = (
        f"clinicdb_migrations = {MIGRATIONS}\n"
        f"clinicdb_seeds = {SEED.parent}\n"
        f"clinicdb_pg_bin = {bindir}\n"
        f"clinicdb_cache_dir = {cache}\n"
    )
    loads = "".join(f"    {p}\n" for p in [*sorted(MIGRATIONS.glob("*.sql")), SEED])
    pg_ini = f"postgresql_exec = {bindir / 'pg_ctl'}\npostgresql_load =\n{loads}"
    no_pg = ("-p", "no:pytest_postgresql")
    results: dict[str, dict[str, float]] = {}
    try:
        write_project(work / "baseline", "baseline", args.n, "")
        results["baseline"] = run(work / "baseline", *no_pg, "-p", "no:clinicdb")
        write_project(work / "db", "clinic_db", args.n, clinic_ini)
        results["clinic_db cold"] = run(work / "db", *no_pg)
        results["clinic_db warm"] = run(work / "db", *no_pg)
        write_project(work / "fresh", "clinic_db_fresh", args.n, clinic_ini)
        results["clinic_db_fresh warm"] = run(work / "fresh", *no_pg)
        if not args.skip_defaults:
            write_project(work / "pp", "postgresql", args.n, pg_ini)
            results["pytest-postgresql"] = run(
                work / "pp", "-p", "no:clinicdb", as_account=True, python=pp_python
            )
        tuned = pg_ini + f"postgresql_postgres_options = {SPEED}\n"
        write_project(work / "ppt", "postgresql", args.n, tuned)
        results["pytest-postgresql tuned"] = run(
            work / "ppt",
            "-p",
            "no:clinicdb",
            f"--basetemp={work / 'ppt-basetemp'}",
            as_account=True,
            python=pp_python,
        )
    finally:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest_clinicdb.cli",
                "down",
                "--clean",
                "--cache-dir",
                str(cache),
            ],
            check=False,
            stdout=subprocess.DEVNULL,
        )
        shutil.rmtree(work, ignore_errors=True)
    report(results, args.n, bindir)


def report(results: dict[str, dict[str, float]], n: int, bindir: Path) -> None:
    base = results["baseline"]
    per_test = {k: max(r["overhead_ms"] - base["overhead_ms"], 0.001) for k, r in results.items()}
    # Throughput: everything the run spent beyond the baseline and its start-up, per test —
    # it includes work done in the background (clones made ahead, drops behind).
    through = {
        k: max(r["wall_s"] - base["wall_s"] - r["startup_s"], 0.0) / n * 1000
        for k, r in results.items()
    }
    print(f"{n} tests per variant; PostgreSQL from {bindir}")
    print(f"{'variant':<26}{'start-up s':>11}{'per test ms':>13}{'wall ms/test':>14}{'wall s':>9}")
    for name, r in results.items():
        print(
            f"{name:<26}{r['startup_s']:>11.2f}{per_test[name]:>13.2f}"
            f"{through[name]:>14.1f}{r['wall_s']:>9.1f}"
        )
    print("per test = median(setup + teardown) minus the baseline's (the first test is start-up);")
    print("wall ms/test = (wall - baseline wall - start-up) / tests")
    for theirs in ("pytest-postgresql", "pytest-postgresql tuned"):
        if theirs not in per_test:
            continue
        for ours in ("clinic_db warm", "clinic_db_fresh warm"):
            print(
                f"{theirs} / {ours}: per test {per_test[theirs] / per_test[ours]:,.0f}x, "
                f"wall {through[theirs] / max(through[ours], 0.001):,.1f}x"
            )


if __name__ == "__main__":
    main()
