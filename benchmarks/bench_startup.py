"""Session start-up broken down: initdb, server start, template build (median of 5).

python benchmarks/bench_startup.py [--pg-bin DIR]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from pytest_clinicdb.binaries import find_binaries, make_reachable, server_account
from pytest_clinicdb.config import default_cache_dir
from pytest_clinicdb.migrations import discover
from pytest_clinicdb.server.embedded import EmbeddedCluster
from pytest_clinicdb.templates import TemplateSpec, current_month, ensure_template, standard_build

REPO = Path(__file__).resolve().parents[1]


def once(binaries, account, cache: Path) -> dict[str, float]:
    root = cache / f"bench-{time.time_ns()}"
    cluster = EmbeddedCluster(root, binaries, account)
    t0 = time.perf_counter()
    cluster._prepare_dirs()
    cluster._initdb("benchpw")
    t1 = time.perf_counter()
    server = cluster._launch(cluster_port(), "benchpw")
    t2 = time.perf_counter()
    migrations = discover(REPO / "database" / "migrations")
    seed = REPO / "database" / "seeds" / "001_system_seed.sql"
    spec = TemplateSpec(server.major, migrations, [seed], current_month())
    ensure_template(server, spec, build=standard_build(migrations, seed, spec))
    t3 = time.perf_counter()
    cluster.destroy()
    return {"initdb": t1 - t0, "start": t2 - t1, "template build": t3 - t2}


def cluster_port() -> int:
    from pytest_clinicdb.server.embedded import _free_port

    return _free_port()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pg-bin", type=Path)
    args = parser.parse_args()
    binaries = find_binaries(args.pg_bin)
    account = server_account(None)
    cache = Path(tempfile.mkdtemp(prefix="bench-", dir=default_cache_dir().parent))
    cache.chmod(0o755)
    try:
        binaries = make_reachable(binaries, account, cache)
        runs = [once(binaries, account, cache) for _ in range(5)]
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    print(binaries.describe())
    for step in runs[0]:
        print(
            f"{step:<16}{statistics.median(r[step] for r in runs) * 1000:>10.0f} ms (median of 5)"
        )


if __name__ == "__main__":
    main()
