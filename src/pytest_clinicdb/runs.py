"""Who a test run is, whether it is still alive, and its directory (no pytest import).

Every database the plugin creates carries the :class:`RunRef` of the run that
created or uses it, so garbage collection can tell a database of a live run
(never touched) from one left by a run that died (``kill -9``, a CI timeout).
A run is its owning pytest process: the controller under xdist, or the single
process.  A pid alone is not enough — pids are recycled — so the kernel start
time of the process is recorded with it.

:class:`Run` is the run's directory in the cache, ``run-<id>/``::

    owner.json        the owning process (lets the next run reap this one if it dies)
    databases         every database name, journaled just before it is created
    servers/*.json    what the run started (shutdown state: typed, written or raised)
    report-*.json     what each process learnt, for the terminal summary (diagnostics)
    reaping           locked by the one process that reaps the run once it is dead
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import secrets
import shutil
import socket
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError

RUN_DIR_PREFIX = "run-"
OWNER_FILE = "owner.json"
JOURNAL = "databases"
SERVERS = "servers"
REAP_LOCK = "reaping"


def host_identity() -> str:
    """This machine's name in run records (``CLINICDB_HOST_ID`` overrides it, for containers
    that share a hostname)."""
    return os.environ.get("CLINICDB_HOST_ID") or socket.gethostname()


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
        return cls(run_id, pid, process_start_time(pid), host_identity())

    @classmethod
    def new(cls) -> RunRef:
        """A new run owned by this process."""
        return cls.of(secrets.token_hex(4), os.getpid())

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

    @property
    def local(self) -> bool:
        return self.host == host_identity()

    def alive(self) -> bool:
        """Whether the run's process still runs.  A run on another host counts as alive here;
        the server can tell (:func:`pytest_clinicdb.gc.run_alive`)."""
        if not self.local:
            return True
        return pid_alive(self.pid) and process_start_time(self.pid) == self.start


@dataclass(frozen=True)
class ServerRecord:
    """What a run started on a backend, as that backend needs it to release or reap it."""

    backend: str
    state: dict[str, Any]
    #: Names the server within the run (a record written again replaces the earlier one).
    ident: str = ""

    @property
    def key(self) -> str:
        ident = self.ident or json.dumps(self.state, sort_keys=True)
        return f"{self.backend}-{hashlib.sha256(ident.encode()).hexdigest()[:12]}"


class Run:
    """The directory of one test run in the cache, created whole by the constructor.

    Any process of the run (the controller or an xdist worker) may be the first
    to create it: every step is idempotent.  Raises :class:`ConfigError` naming
    the cache directory when it cannot be used.
    """

    def __init__(self, cache_dir: Path, ref: RunRef, worker: str = "main") -> None:
        self.cache_dir = cache_dir
        self.ref = ref
        self.worker = worker
        self.dir = cache_dir / f"{RUN_DIR_PREFIX}{ref.id}"
        try:
            cache_dir.mkdir(parents=True, exist_ok=True)
            # Others (the server account) may pass through, but neither list nor write.
            os.chmod(cache_dir, 0o711)
            (self.dir / SERVERS).mkdir(parents=True, exist_ok=True)
            os.chmod(self.dir, 0o711)
            os.chmod(self.dir / SERVERS, 0o700)
            owner = self.dir / OWNER_FILE
            if not owner.exists():
                _write_json(owner, ref.to_dict())
            # A full disk shows here, not halfway through initdb.
            probe = cache_dir / f".write-test-{os.getpid()}"
            probe.write_bytes(b"x" * 4096)
            probe.unlink()
        except OSError as exc:
            raise ConfigError(
                f"cache directory {cache_dir} is not usable: {exc.strerror or exc}",
                hint="free some space there, or choose another directory with "
                "--clinicdb-cache-dir (env CLINICDB_CACHE_DIR)",
            ) from None

    @property
    def id(self) -> str:
        return self.ref.id

    # ------------------------------------------------------------ journal

    def journal(self, name: str) -> None:
        """Record a database name just before it is created (a killed run's clones are found)."""
        with open(self.dir / JOURNAL, "a") as journal:
            journal.write(name + "\n")

    # ------------------------------------------------------------ shutdown state

    def record_server(self, record: ServerRecord) -> None:
        """Remember what this run started, for its owner's shutdown (or the next run's reaping).

        Unlike the diagnostic reports this must not be lost: an error propagates.
        """
        _write_json(self.dir / SERVERS / f"{record.key}.json", asdict(record))

    def servers(self) -> list[ServerRecord]:
        return servers_of(self.dir)

    # ------------------------------------------------------------ diagnostics

    def report(self) -> dict[str, Any]:
        path = self.dir / f"report-{self.worker}.json"
        with contextlib.suppress(OSError, ValueError):
            data = json.loads(path.read_text())
            if isinstance(data, dict):
                return data
        return {"worker": self.worker}

    def write_report(self, **fields: object) -> None:
        """Leave what this process learnt for the controller's terminal summary (best effort)."""
        with contextlib.suppress(OSError, ValueError, TypeError):
            data = self.report()
            data.update(fields)
            _write_json(self.dir / f"report-{self.worker}.json", data)

    def reports(self) -> list[dict[str, Any]]:
        return reports_of(self.dir)


def servers_of(run_dir: Path) -> list[ServerRecord]:
    found = []
    try:
        paths = sorted((run_dir / SERVERS).glob("*.json"))
    except OSError:  # the directory went while listing it
        return []
    for path in paths:
        try:
            data = json.loads(path.read_text())
            found.append(
                ServerRecord(str(data["backend"]), dict(data["state"]), str(data.get("ident", "")))
            )
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return found


def reports_of(run_dir: Path) -> list[dict[str, Any]]:
    found = []
    for path in sorted(run_dir.glob("report-*.json")):
        with contextlib.suppress(OSError, ValueError):
            found.append(json.loads(path.read_text()))
    return found


def run_dirs(cache_dir: Path) -> Iterator[Path]:
    if cache_dir.is_dir():
        yield from (p for p in cache_dir.glob(f"{RUN_DIR_PREFIX}*") if p.is_dir())


def run_dir_owner_alive(run_dir: Path, *, grace: float = 600.0) -> bool:
    """Whether the run of ``run_dir`` still runs (a directory without owner: only while young)."""
    try:
        owner = RunRef.from_dict(json.loads((run_dir / OWNER_FILE).read_text()))
    except (OSError, ValueError):
        owner = None
    if owner is not None:
        return owner.alive()
    try:
        return time.time() - run_dir.stat().st_mtime < grace
    except OSError:
        return True


def journaled(run_dir: Path) -> list[str]:
    with contextlib.suppress(OSError):
        return (run_dir / JOURNAL).read_text().split()
    return []


@contextlib.contextmanager
def reaping(run_dir: Path) -> Iterator[bool]:
    """Claim the right to reap the dead run of ``run_dir``: True for one process only.

    Every process of the next run (each xdist worker, a ``clinicdb gc`` beside
    them) finds the same dead run; the one that locks its ``reaping`` file first
    reaps it, the others go on.  The lock lives inside the directory, so once the
    winner removed it a latecomer can neither create it again nor take it for a
    run still to reap.
    """
    try:
        fd = os.open(run_dir / REAP_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:  # the directory is gone: reaped already
        yield False
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # another process reaps it now
            yield False
            return
        yield (run_dir / REAP_LOCK).exists()  # False: reaped and removed while we waited
    finally:
        os.close(fd)


def remove_run_dir(run_dir: Path) -> None:
    shutil.rmtree(run_dir, ignore_errors=True)


def _write_json(path: Path, data: object) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data))
    os.chmod(tmp, 0o600)
    tmp.replace(path)
