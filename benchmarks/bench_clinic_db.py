"""Per-test overhead of clinic_db and clinic_db_fresh, and session start-up.

Not part of the test suite.  Generates a throw-away project with N tests per
variant against this repository's clinic database, runs each variant in a
fresh pytest process (side by side, in one run), and prints medians:

    python benchmarks/bench_clinic_db.py            # 200 tests per variant
    python benchmarks/bench_clinic_db.py -n 400

Per-test overhead = median of (setup + teardown) durations as pytest reports
them, minus the same for a baseline test that uses no database.  Start-up =
wall time from pytest's session start to the first test's call phase.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

RECORDER = """
import json, os, time
import pytest

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

TESTS = {
    "baseline": "def test_{i}():\n    assert True\n",
    "clinic_db": (
        "def test_{i}(clinic_db):\n"
        "    clinic_db.execute(\"INSERT INTO clinic.clinics (name, slug) VALUES ('c', 'c{i}')\")\n"
    ),
    "clinic_db_fresh": (
        "def test_{i}(clinic_db_fresh):\n"
        "    clinic_db_fresh.execute(\n"
        "        \"INSERT INTO clinic.clinics (name, slug) VALUES ('c', 'c{i}')\")\n"
        "    clinic_db_fresh.commit()\n"
    ),
}


def run_variant(name: str, count: int, workdir: Path) -> dict[str, float]:
    proj = workdir / name
    proj.mkdir()
    (proj / "conftest.py").write_text(RECORDER)
    (proj / f"test_{name}.py").write_text("".join(TESTS[name].format(i=i) for i in range(count)))
    (proj / "pytest.ini").write_text(
        textwrap.dedent(
            f"""
            [pytest]
            clinicdb_migrations = {REPO / "database" / "migrations"}
            clinicdb_seeds = {REPO / "database" / "seeds"}
            """
        )
    )
    out = proj / "result.json"
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly"],
        cwd=proj,
        env={**__import__("os").environ, "BENCH_OUT": str(out)},
        check=True,
        stdout=subprocess.DEVNULL,
    )
    data = json.loads(out.read_text())
    overheads = [p.get("setup", 0) + p.get("teardown", 0) for p in data["phases"].values()]
    calls = [p.get("call", 0) for p in data["phases"].values()]
    # The first test pays for the server and the template: report it as start-up, not per test.
    return {
        "startup_s": data["startup"],
        "overhead_ms": statistics.median(overheads[1:]) * 1000,
        "call_ms": statistics.median(calls[1:]) * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=200, help="tests per variant")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = {name: run_variant(name, args.n, Path(tmp)) for name in TESTS}
    base = results["baseline"]["overhead_ms"]
    header = ("variant", "start-up s", "setup+teardown ms", "minus baseline ms", "call ms")
    print(f"{header[0]:<18}{header[1]:>12}{header[2]:>20}{header[3]:>20}{header[4]:>10}")
    for name, r in results.items():
        print(
            f"{name:<18}{r['startup_s']:>12.2f}{r['overhead_ms']:>20.3f}"
            f"{r['overhead_ms'] - base:>20.3f}{r['call_ms']:>10.3f}"
        )
    print(f"(medians over {args.n - 1} tests per variant; the first test is counted as start-up)")


if __name__ == "__main__":
    main()
