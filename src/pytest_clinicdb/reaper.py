"""The reaper: stops a kept server once no live run uses it, whatever killed the runs.

The embedded backend starts one next to every server it starts::

    python -m pytest_clinicdb.reaper <cluster directory>

in a session of its own, so a signal to pytest's process group — Ctrl-C, a CI
cancellation, ``kill -9`` of the whole group — does not reach it.  Every
second it looks at the cluster's registered users (live test runs, ``clinicdb
up``, databases kept by ``--clinicdb-keep-failed``): when none is alive, it
stops the server (a fast shutdown cancels a build in progress; the next run
drops its half-built database) and exits.  It also exits as soon as the server
is gone, so it never outlives its purpose.  It needs no PostgreSQL binary: only
the cluster directory (testcontainers' Ryuk is the model, for a local server).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from filelock import Timeout

from .server.cluster import ClusterDir

#: Seconds between two looks; a dead run's server is stopped within about this long.
INTERVAL = 0.5
#: The starting run registers under the cluster's lock right after the start; a short grace is
#: enough (while the lock is held the reaper only waits).
GRACE = 0.5


def watch(cluster: ClusterDir, *, interval: float = INTERVAL, grace: float = GRACE) -> str:
    """Watch ``cluster`` until its server stops or nobody uses it; return why it ended."""
    time.sleep(grace)
    while True:
        if not cluster.running():
            return "the server stopped"
        try:
            with cluster.file_lock(timeout=0):
                if not cluster.live_users():
                    cluster.stop()
                    return "no live run uses the server: stopped it"
        except Timeout:
            pass  # a run is starting or releasing it right now: look again soon
        time.sleep(interval)


def spawn(cluster: ClusterDir) -> int:
    """Start the reaper of ``cluster`` in a session of its own; its pid."""
    log = open(cluster.root / "reaper.log", "ab")  # noqa: SIM115 - the child owns it
    os.chmod(cluster.root / "reaper.log", 0o600)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pytest_clinicdb.reaper", str(cluster.root)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd="/",
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        )
    finally:
        log.close()
    (cluster.root / "reaper.pid").write_text(str(proc.pid))
    return proc.pid


def main(argv: list[str]) -> int:
    cluster = ClusterDir(Path(argv[0]))
    why = watch(cluster)
    print(f"pytest-clinicdb reaper {os.getpid()}: {why}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
