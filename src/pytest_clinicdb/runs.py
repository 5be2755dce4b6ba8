"""Who a test run is, and whether it is still alive (no pytest import).

Every database the plugin creates carries the :class:`RunRef` of the run that
created or uses it, so garbage collection can tell a database of a live run
(never touched) from one left by a run that died (``kill -9``, a CI timeout).
A run is its owning pytest process: the controller under xdist, or the single
process.  A pid alone is not enough — pids are recycled — so the kernel start
time of the process is recorded with it.
"""

from __future__ import annotations

import os
import socket
from dataclasses import asdict, dataclass
from typing import Any


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except OSError:
        return True


def process_start_time(pid: int) -> str | None:
    """Kernel start time of ``pid`` (to tell a live owner from a recycled pid)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


@dataclass(frozen=True)
class RunRef:
    """A test run: its id and its owning process (pid, start time, host)."""

    id: str
    pid: int
    start: str | None
    host: str

    @classmethod
    def of(cls, run_id: str, pid: int) -> RunRef:
        return cls(run_id, pid, process_start_time(pid), socket.gethostname())

    @classmethod
    def from_dict(cls, data: Any) -> RunRef | None:
        if not isinstance(data, dict):
            return None
        try:
            return cls(str(data["id"]), int(data["pid"]), data.get("start"), str(data["host"]))
        except (KeyError, TypeError, ValueError):
            return None

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def alive(self) -> bool:
        """Whether the run's process still runs.  A run on another host counts as alive."""
        if self.host != socket.gethostname():
            return True
        return pid_alive(self.pid) and process_start_time(self.pid) == self.start
