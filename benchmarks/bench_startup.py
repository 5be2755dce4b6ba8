"""Session start-up broken down, medians of 5, in one run:

- plugin load: ``pytest --co -q`` of a suite with no database test, with the
  plugin and with ``-p no:clinicdb`` (the difference is what loading the plugin
  costs every pytest run);
- initdb, copying the pristine data directory (what a new cluster costs instead
  of initdb), server start, and the clinic template build.

python benchmarks/bench_startup.py [--pg-bin DIR] [--runs N]
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def plugin_load(runs: int) -> dict[str, float]:
    """Wall time of ``pytest --co -q`` on ten plain tests, with and without the plugin."""
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "test_plain.py").write_text(
            "import pytest\n\n@pytest.mark.parametrize('n', range(10))\ndef test_n(n):\n"
            "    assert n >= 0\n"
        )
        times: dict[str, list[float]] = {"with the plugin": [], "without (-p no:clinicdb)": []}
        # As on a developer's machine: compiled modules cached (a first run writes them).
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        for run in range(runs + 1):
            for label, extra in (
                ("with the plugin", []),
                ("without (-p no:clinicdb)", ["-p", "no:clinicdb"]),
            ):
                t0 = time.perf_counter()
                subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "pytest",
                        "--co",
                        "-q",
                        "-p",
                        "no:cacheprovider",
                        *extra,
                    ],
                    cwd=tmp,
                    env=env,
                    capture_output=True,
                    check=True,
                )
                if run:  # the first run only warms the caches
                    times[label].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def server_steps(binaries, account, cache: Path) -> dict[str, float]:
    import psycopg

    from pytest_clinicdb.config import resolve
    from pytest_clinicdb.project import Project
    from pytest_clinicdb.runs import RunRef
    from pytest_clinicdb.server.cluster import ClusterDir
    from pytest_clinicdb.server.embedded import Launcher, _copy_tree, info_of, launch_cluster
    from pytest_clinicdb.templates import Builder

    launcher = Launcher(binaries, account)
    pristine = ClusterDir(cache / f"pristine-{time.time_ns()}")
    launcher.prepare(pristine)
    password = secrets.token_urlsafe(12)
    t0 = time.perf_counter()
    launcher.initdb(pristine.data, pristine.log, password)
    t1 = time.perf_counter()
    cluster = ClusterDir(cache / f"cluster-{time.time_ns()}")
    launcher.prepare(cluster)
    _copy_tree(pristine.data, cluster.data)
    t2 = time.perf_counter()
    state = launch_cluster(cluster, launcher, password)
    t3 = time.perf_counter()
    server = info_of(cluster, state, binaries.describe(), True)
    given = {
        "migrations": [str(REPO / "database" / "migrations")],
        "seeds": str(REPO / "database" / "seeds"),
        "cache_dir": str(cache),
    }
    settings = resolve(given.get, lambda n: None, env={}, rootdir=REPO)
    Builder(Project(settings), settings, RunRef.new()).base(server)
    t4 = time.perf_counter()
    with psycopg.connect(server.dsn, autocommit=True):
        pass
    cluster.destroy()
    pristine.destroy()
    return {
        "initdb": t1 - t0,
        "copy of the pristine data directory": t2 - t1,
        "server start": t3 - t2,
        "template build (clinic schema)": t4 - t3,
    }


def main() -> None:
    from pytest_clinicdb.binaries import find_binaries, make_reachable, server_account
    from pytest_clinicdb.config import default_cache_dir

    parser = argparse.ArgumentParser()
    parser.add_argument("--pg-bin", type=Path)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    load = plugin_load(args.runs)
    binaries = find_binaries(args.pg_bin)
    account = server_account(None)
    cache = Path(tempfile.mkdtemp(prefix="bench-", dir=default_cache_dir().parent))
    cache.chmod(0o755)
    try:
        binaries = make_reachable(binaries, account, cache)
        runs = [server_steps(binaries, account, cache) for _ in range(args.runs)]
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    print(f"pytest --co -q, 10 plain tests (median of {args.runs}):")
    for label, seconds in load.items():
        print(f"  {label:<28}{seconds * 1000:>8.0f} ms")
    over = load["with the plugin"] - load["without (-p no:clinicdb)"]
    print(f"  {'plugin load':<28}{over * 1000:>8.0f} ms over bare pytest")
    print(f"{binaries.describe()} (median of {args.runs}):")
    for step in runs[0]:
        print(f"  {step:<40}{statistics.median(r[step] for r in runs) * 1000:>8.0f} ms")


if __name__ == "__main__":
    main()
