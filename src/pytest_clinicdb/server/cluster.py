"""A cluster directory of the embedded backend, usable without any PostgreSQL binary.

Stopping, reaping and counting the users of a server only need its directory
and the postmaster's pid, so a later run (or ``clinicdb down``) can do them even
when the binaries that started it are gone::

    <cluster>/data         PGDATA (owned by the server account, 0700)
    <cluster>/sock         unix socket directory (server account, 0700)
    <cluster>/server.log   everything the server printed (0600)
    <cluster>/state.json   port, password, postmaster pid, version, bindir (0600)
    <cluster>/cluster.json what the cluster holds: project, migration chain, build
    <cluster>/users/       one file per live run using the server (a refcount)
    <cluster>/templates/   one empty file per template the server holds (for the header)
    <cluster>/initdb.done  the data directory is complete (else it is made again)

Start and stop happen under a file lock beside the directory, so any process of
a run may be the one that starts it and the others attach to it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from ..runs import RunRef, pid_alive

CLUSTER_DIR_PREFIX = "cluster-"
#: A cluster's lock is held for moments (a run registering or releasing, the reaper stopping
#: the server, a new chain copying it): who needs it waits this long before giving up.
LOCK_WAIT = 10.0


def log_tail(path: Path | None, lines: int = 25, *, since: int = 0) -> str:
    """The last ``lines`` lines of the log, of what was written after byte ``since``."""
    if path is None:
        return ""
    try:
        with open(path, "rb") as f:
            f.seek(since)
            text = f.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _is_postmaster_of(pid: int, data_dir: Path) -> bool:
    """Whether ``pid`` is a postgres process serving ``data_dir`` (never signal anything else)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            args = f.read().split(b"\0")
    except OSError:
        return pid_alive(pid)  # no /proc: trust the pid file
    return str(data_dir).encode() in args


@dataclass(frozen=True)
class ClusterDir:
    """One cluster directory; see the module docstring for the layout."""

    root: Path

    # ------------------------------------------------------------ paths

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def sock(self) -> Path:
        return self.root / "sock"

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @property
    def meta_file(self) -> Path:
        return self.root / "cluster.json"

    @property
    def users(self) -> Path:
        return self.root / "users"

    @property
    def templates(self) -> Path:
        return self.root / "templates"

    @property
    def initdb_done(self) -> Path:
        return self.root / "initdb.done"

    @property
    def lock(self) -> Path:
        return self.root.with_name(self.root.name + ".lock")

    def file_lock(self, timeout: float = -1) -> FileLock:
        return FileLock(str(self.lock), timeout=timeout)

    # ------------------------------------------------------------ state

    def state(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def meta(self) -> dict[str, Any]:
        try:
            data = json.loads(self.meta_file.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def write_meta(self, **fields: object) -> None:
        data = {**self.meta(), **fields}
        tmp = self.meta_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        os.chmod(tmp, 0o600)
        tmp.replace(self.meta_file)

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            pass
        state = self.state()
        try:
            return int(state["pid"]) if state else None
        except (KeyError, TypeError, ValueError):
            return None

    def running(self) -> bool:
        pid = self.postmaster_pid()
        return pid is not None and pid_alive(pid) and _is_postmaster_of(pid, self.data)

    def bindir_exists(self) -> bool:
        """Whether the build that made this cluster is still installed (unknown: True)."""
        state = self.state()
        if not state or "bindir" not in state:
            return True
        return (Path(str(state["bindir"])) / "postgres").exists()

    # ------------------------------------------------------------ users

    def register(self, user: RunRef) -> None:
        self.users.mkdir(mode=0o700, exist_ok=True)
        path = self.users / f"{user.id}.json"
        if not path.exists():
            path.write_text(json.dumps(user.to_dict()))
            os.chmod(path, 0o600)

    def live_users(self) -> list[RunRef]:
        """Runs registered on this cluster whose process is alive (dead ones are removed)."""
        found = []
        for path in sorted(self.users.glob("*.json")) if self.users.is_dir() else []:
            try:
                ref = RunRef.from_dict(json.loads(path.read_text()))
            except (OSError, ValueError):
                ref = None
            if ref is not None and ref.alive():
                found.append(ref)
            else:
                path.unlink(missing_ok=True)
        return found

    def release(self, run_id: str, *, stop: bool = True, wait: bool = True) -> bool:
        """Unregister ``run_id``; stop the server if no live run uses it.  True if stopped.

        Without ``wait`` the server is asked to shut down and left to it.
        """
        if not self.root.is_dir():
            return False
        with self.file_lock():
            (self.users / f"{run_id}.json").unlink(missing_ok=True)
            if self.live_users() or not stop:
                return False
            return self.stop(wait=wait)

    # ------------------------------------------------------------ stop

    def wait_stopped(self, timeout: float = 20.0) -> bool:
        """Wait for a server that is shutting down to exit; True once none runs."""
        deadline = time.monotonic() + timeout
        while self.running():
            if time.monotonic() > deadline:
                return self.stop()
            time.sleep(0.01)
        return True

    def stop(self, timeout: float = 20.0, *, wait: bool = True) -> bool:
        """Stop the server if it runs (fast shutdown, then harder). True if one was stopped.

        Without ``wait``: a fast shutdown is requested and not waited for.
        """
        pid = self.postmaster_pid()
        if pid is None or not pid_alive(pid) or not _is_postmaster_of(pid, self.data):
            return False
        if not wait:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGINT)
            return True
        for sig, wait_s in ((signal.SIGINT, timeout), (signal.SIGQUIT, 5.0), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
            deadline = time.monotonic() + wait_s
            while time.monotonic() < deadline:
                if not pid_alive(pid):
                    return True
                time.sleep(0.02)
        return not pid_alive(pid)

    def destroy(self) -> None:
        """Stop the server and delete the whole cluster directory."""
        with self.file_lock():
            self.stop()
            shutil.rmtree(self.root, ignore_errors=True)
        with contextlib.suppress(OSError):
            self.lock.unlink()

    def stop_if_idle(self, *, delete: bool = False, forget: Sequence[str] = ()) -> str | None:
        """Stop (and with ``delete`` remove) the cluster unless a live run uses it.

        ``forget``: patterns of registered users (``up``, ``kept-*``) to unregister first, in
        the same hold of the lock, so that the reaper cannot stop the server in between and
        leave this call with nothing to report.  Returns ``"stopped"``, ``"deleted"``,
        ``"busy"`` or None (nothing to do).  A cluster whose lock another process holds for
        longer than :data:`LOCK_WAIT` is busy.
        """
        try:
            with self.file_lock(timeout=LOCK_WAIT):
                for pattern in forget if self.users.is_dir() else ():
                    for path in self.users.glob(f"{pattern}.json"):
                        path.unlink(missing_ok=True)
                if self.live_users():
                    return "busy"
                stopped = self.running() and self.stop()
                if delete or not self.bindir_exists():
                    shutil.rmtree(self.root, ignore_errors=True)
                    self.lock.unlink(missing_ok=True)
                    return "deleted"
                return "stopped" if stopped else None
        except Timeout:
            return "busy"


def clusters(cache_dir: Path) -> list[ClusterDir]:
    """Every kept cluster directory of the cache."""
    if not cache_dir.is_dir():
        return []
    return [ClusterDir(p) for p in sorted(cache_dir.glob(f"{CLUSTER_DIR_PREFIX}*")) if p.is_dir()]


def stop_idle_clusters(
    cache_dir: Path, *, skip: Path | None, delete: bool = False, forget: Sequence[str] = ()
) -> dict[str, list[Path]]:
    """Stop kept servers that no live run uses (a killed run's, or one left for kept databases).

    Clusters whose PostgreSQL build is gone (an upgraded package) are deleted, and
    with ``delete`` every idle one; ``forget`` as for :meth:`ClusterDir.stop_if_idle`.
    Returns the ``stopped``, ``deleted`` and ``busy`` directories.
    """
    result: dict[str, list[Path]] = {"stopped": [], "deleted": [], "busy": []}
    for cluster in clusters(cache_dir):
        if cluster.root == skip:
            continue
        outcome = cluster.stop_if_idle(delete=delete, forget=forget)
        if outcome is not None:
            result[outcome].append(cluster.root)
    return result
