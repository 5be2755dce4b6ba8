"""A dead run is reaped once, however many processes of the next run find it at the same time."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

import pytest_clinicdb.server as server
from pytest_clinicdb.gc import reap_dead_runs
from pytest_clinicdb.runs import Run, RunRef, ServerRecord, host_identity


class SlowReap:
    """A backend whose reaping takes a while, so that the other reapers arrive during it."""

    calls: list[tuple[str, dict]] = []

    @classmethod
    def reap(cls, state, run_id):
        cls.calls.append((run_id, state))
        time.sleep(0.3)


@pytest.fixture
def dead_run(tmp_path, monkeypatch):
    monkeypatch.setitem(server._REGISTERED, "slowreap", SlowReap)
    monkeypatch.setattr(SlowReap, "calls", [])
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    ref = RunRef("deadbeef", int(child.stdout), "1", host_identity())  # that process is gone
    run = Run(tmp_path / "cache", ref)
    run.journal("clinicdb_w_deadbeef_gw0_1")
    run.journal("clinicdb_w_deadbeef_gw1_1")
    run.record_server(ServerRecord("slowreap", {"server": 1}))
    return run


def test_every_worker_finds_the_dead_run_one_reaps_it(dead_run):
    reapers = 4
    barrier = threading.Barrier(reapers)
    found: list[list[str]] = []
    errors: list[BaseException] = []

    def reap():
        barrier.wait()
        try:
            found.append(reap_dead_runs(dead_run.cache_dir, keep="cafe0001"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=reap) for _ in range(reapers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert SlowReap.calls == [("deadbeef", {"server": 1})]
    assert sorted(found, key=len) == [[]] * (reapers - 1) + [
        ["clinicdb_w_deadbeef_gw0_1", "clinicdb_w_deadbeef_gw1_1"]
    ]
    assert not dead_run.dir.exists(), "the run directory is removed, and not made again"


def test_a_run_that_is_alive_is_not_reaped(dead_run):
    alive = Run(dead_run.cache_dir, RunRef.new())
    assert reap_dead_runs(dead_run.cache_dir, keep=alive.id) == [
        "clinicdb_w_deadbeef_gw0_1",
        "clinicdb_w_deadbeef_gw1_1",
    ]
    assert alive.dir.is_dir() and not dead_run.dir.exists()
    assert reap_dead_runs(dead_run.cache_dir, keep="") == []
    assert alive.dir.is_dir()
