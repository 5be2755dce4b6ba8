"""The embedded backend: a private PostgreSQL cluster started from local binaries.

A cluster lives in one directory of the plugin's cache::

    <cluster>/data         PGDATA (owned by the server account, 0700)
    <cluster>/sock         unix socket directory (server account, 0700)
    <cluster>/server.log   everything the server printed
    <cluster>/state.json   port, password, postmaster pid, version (0600)
    <cluster>/users/       one file per live test run using the server (a refcount)
    <cluster>/initdb.done  written once initdb completed (else the data dir is redone)

Start and stop happen under a file lock beside the directory, so any process of
a run (xdist workers included) may be the one that starts it and the others
attach to it.  The server is started in its own session so Ctrl-C in the
terminal does not kill it under running tests; the owning process stops it.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
from filelock import FileLock

from ..binaries import Account, PgBinaries, reachable_by, run_as_kwargs
from ..errors import ConfigError, ServerStartError
from ..runs import RunRef, pid_alive
from . import ServerInfo

SUPERUSER = "postgres"
#: A new cluster takes 70-80 MB with a few templates; refuse to start one with less room.
MIN_FREE_BYTES = 128 << 20
#: A kept cluster's log is rotated when it starts and has grown beyond this.
LOG_ROTATE_BYTES = 4 << 20

#: Settings that make a throwaway test cluster fast; durability is not needed.
SPEED_SETTINGS: dict[str, str] = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "300",
    "max_locks_per_transaction": "256",
}


@dataclass(frozen=True)
class ClusterPaths:
    root: Path

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
    def state(self) -> Path:
        return self.root / "state.json"

    @property
    def users(self) -> Path:
        return self.root / "users"

    @property
    def initdb_done(self) -> Path:
        return self.root / "initdb.done"

    @property
    def lock(self) -> Path:
        return self.root.with_name(self.root.name + ".lock")


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


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _is_postmaster_of(pid: int, data_dir: Path) -> bool:
    """Whether ``pid`` is a postgres process serving ``data_dir`` (never signal anything else)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            args = f.read().split(b"\0")
    except OSError:
        return pid_alive(pid)  # no /proc: trust the pid file
    return str(data_dir).encode() in args


def postmaster_pid(paths: ClusterPaths) -> int | None:
    try:
        first = (paths.data / "postmaster.pid").read_text().splitlines()[0]
        return int(first)
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(json.loads(paths.state.read_text())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


class EmbeddedCluster:
    """One private cluster in ``root``; see the module docstring for the layout."""

    backend = "embedded"

    def __init__(
        self,
        root: Path,
        binaries: PgBinaries,
        account: Account | None,
        *,
        extra_settings: dict[str, str] | None = None,
        start_timeout: float = 60.0,
    ) -> None:
        self.paths = ClusterPaths(root)
        self.binaries = binaries
        self.account = account
        self.settings = {**SPEED_SETTINGS, **(extra_settings or {})}
        self.start_timeout = start_timeout
        #: How the server came up in this process: initdb/start seconds, or "attached".
        self.timings: dict[str, float] = {}
        self.how = ""

    # ----------------------------------------------------------------- start

    def ensure_running(self, user: RunRef | None = None) -> ServerInfo:
        """Start the cluster unless it already runs; register ``user``; return how to reach it.

        Attaching, starting and registering happen under the cluster's lock, so a
        run that is releasing the server (:meth:`release`) never stops it under a
        run that is just arriving.
        """
        self.paths.root.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.paths.lock)):
            info = self._attach()
            if info is None:
                info = self._start()
            else:
                self.how = "attached to the running server"
            if user is not None:
                self._register(user)
            return info

    # ----------------------------------------------------------------- users

    def _register(self, user: RunRef) -> None:
        self.paths.users.mkdir(exist_ok=True)
        path = self.paths.users / f"{user.id}.json"
        if not path.exists():
            path.write_text(json.dumps(user.to_dict()))

    def live_users(self) -> list[RunRef]:
        """Runs registered on this cluster whose process is alive (dead ones are removed)."""
        found = []
        for path in sorted(self.paths.users.glob("*.json")) if self.paths.users.is_dir() else []:
            try:
                ref = RunRef.from_dict(json.loads(path.read_text()))
            except (OSError, ValueError):
                ref = None
            if ref is not None and ref.alive():
                found.append(ref)
            else:
                path.unlink(missing_ok=True)
        return found

    def release(self, run_id: str, *, stop: bool = True) -> bool:
        """Unregister ``run_id``; stop the server if no live run uses it.  True if stopped."""
        if not self.paths.root.is_dir():
            return False
        with FileLock(str(self.paths.lock)):
            (self.paths.users / f"{run_id}.json").unlink(missing_ok=True)
            if self.live_users() or not stop:
                return False
            return self.stop()

    def running(self) -> bool:
        pid = postmaster_pid(self.paths)
        return pid is not None and pid_alive(pid) and _is_postmaster_of(pid, self.paths.data)

    def _attach(self) -> ServerInfo | None:
        try:
            state = json.loads(self.paths.state.read_text())
        except (OSError, ValueError):
            return None
        pid = postmaster_pid(self.paths)
        if pid is None or not pid_alive(pid):
            return None
        info = self._info(state)
        try:
            with psycopg.connect(info.dsn, connect_timeout=5):
                return info
        except psycopg.Error:
            return None

    def _info(self, state: dict[str, object]) -> ServerInfo:
        return ServerInfo(
            backend=self.backend,
            host=str(self.paths.sock),
            port=int(str(state["port"])),
            user=SUPERUSER,
            password=None,  # the unix socket uses peer-less trust; TCP needs the password
            version=str(state["version"]),
            major=int(str(state["major"])),
            data_dir=self.paths.data,
            log_path=self.paths.log,
            binaries=self.binaries.describe(),
            tcp_port=int(str(state["port"])),
        )

    def tcp_password(self) -> str | None:
        try:
            return str(json.loads(self.paths.state.read_text())["password"])
        except (OSError, ValueError, KeyError):
            return None

    def _prepare_dirs(self) -> None:
        root = self.paths.root
        if self.account is not None and not reachable_by(root.parent, self.account):
            raise ConfigError(
                f"cache directory {root.parent} is not reachable by account {self.account.name}, "
                "which runs the server because pytest runs as root",
                hint="choose a directory every account can traverse with --clinicdb-cache-dir "
                "(e.g. under /tmp or /dev/shm)",
            )
        root.mkdir(parents=True, exist_ok=True)
        os.chmod(root, 0o755)
        for d in (self.paths.data, self.paths.sock):
            d.mkdir(exist_ok=True)
            os.chmod(d, 0o700)
            if self.account is not None:
                os.chown(d, self.account.uid, self.account.gid)

    def _initdb(self, password: str) -> None:
        pwfile = self.paths.root / "pwfile"
        pwfile.write_text(password + "\n")
        os.chmod(pwfile, 0o600)
        if self.account is not None:
            os.chown(pwfile, self.account.uid, self.account.gid)
        cmd = [
            str(self.binaries.tool("initdb")),
            "-D",
            str(self.paths.data),
            "-U",
            SUPERUSER,
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            f"--pwfile={pwfile}",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ]
        try:
            with open(self.paths.log, "ab") as log:
                proc = subprocess.run(
                    cmd,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd="/",
                    check=False,
                    env=_clean_env(),
                    timeout=300,
                    **run_as_kwargs(self.account),
                )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ServerStartError(
                f"initdb could not run: {exc}", log_tail=log_tail(self.paths.log)
            ) from exc
        finally:
            pwfile.unlink(missing_ok=True)
        if proc.returncode != 0:
            raise ServerStartError(
                f"initdb failed with exit code {proc.returncode} ({self.binaries.describe()})",
                log_tail=log_tail(self.paths.log),
            )

    def _start(self) -> ServerInfo:
        fresh = not self.paths.initdb_done.exists() or self.tcp_password() is None
        if not fresh:
            try:
                return self._start_existing()
            except ServerStartError as exc:
                # A kept cluster that no longer starts (a crash mid-write, a full disk):
                # it only ever holds rebuildable templates, so start over from initdb.
                _append(self.paths.log, f"pytest-clinicdb: restarting from initdb: {exc.message}")
        free = shutil.disk_usage(self.paths.root.parent).free
        if free < MIN_FREE_BYTES:
            raise ConfigError(
                f"cache directory {self.paths.root.parent} has {free >> 20} MiB free; a new "
                f"cluster needs about {MIN_FREE_BYTES >> 20} MiB",
                hint="free some space there, or choose another directory with "
                "--clinicdb-cache-dir (env CLINICDB_CACHE_DIR)",
            )
        try:
            self._wipe_data()
            self._prepare_dirs()
            password = secrets.token_urlsafe(18)
            t0 = time.perf_counter()
            self._initdb(password)
            self.timings["initdb"] = time.perf_counter() - t0
            self.paths.initdb_done.write_text("ok\n")
            info = self._launch_on_free_port(password)
            self.how = "new cluster (initdb)"
            return info
        except BaseException:
            self._wipe_data()
            raise

    def _start_existing(self) -> ServerInfo:
        with contextlib.suppress(OSError):
            (self.paths.data / "postmaster.pid").unlink()  # stale: its process is gone
        with contextlib.suppress(OSError):
            if self.paths.log.stat().st_size > LOG_ROTATE_BYTES:
                self.paths.log.replace(self.paths.log.with_suffix(".log.1"))
        info = self._launch_on_free_port(self.tcp_password() or "")
        self.how = "started the kept cluster"
        return info

    def _wipe_data(self) -> None:
        self.paths.initdb_done.unlink(missing_ok=True)
        self.paths.state.unlink(missing_ok=True)
        shutil.rmtree(self.paths.data, ignore_errors=True)
        shutil.rmtree(self.paths.users, ignore_errors=True)

    def _launch_on_free_port(self, password: str) -> ServerInfo:
        t0 = time.perf_counter()
        last_error: ServerStartError | None = None
        for _attempt in range(3):
            port = _free_port()
            try:
                info = self._launch(port, password)
            except ServerStartError as exc:
                last_error = exc
                if "could not bind" in exc.log_tail or "in use" in exc.log_tail:
                    continue
                raise
            self.timings["start"] = time.perf_counter() - t0
            return info
        assert last_error is not None
        raise last_error

    def _launch(self, port: int, password: str) -> ServerInfo:
        cmd = [
            str(self.binaries.tool("postgres")),
            "-D",
            str(self.paths.data),
            "-p",
            str(port),
            "-k",
            str(self.paths.sock),
            "-c",
            "listen_addresses=127.0.0.1",
        ]
        for key, value in self.settings.items():
            cmd += ["-c", f"{key}={value}"]
        mark = self.paths.log.stat().st_size if self.paths.log.exists() else 0
        with open(self.paths.log, "ab") as log:
            proc = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd="/",
                start_new_session=True,
                env=_clean_env(),
                **run_as_kwargs(self.account),
            )
        dsn = psycopg.conninfo.make_conninfo(
            "", host=str(self.paths.sock), port=port, user=SUPERUSER, dbname="postgres"
        )
        deadline = time.monotonic() + self.start_timeout
        version = ""
        while True:
            if proc.poll() is not None:
                raise ServerStartError(
                    f"PostgreSQL exited with code {proc.returncode} while starting "
                    f"({self.binaries.describe()})",
                    log_tail=log_tail(self.paths.log, since=mark),
                )
            try:
                with psycopg.connect(dsn, connect_timeout=2) as conn:
                    version = str(conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
                    major = conn.info.server_version // 10000
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    _kill(proc.pid)
                    raise ServerStartError(
                        f"PostgreSQL did not accept connections within {self.start_timeout:.0f} s",
                        log_tail=log_tail(self.paths.log, since=mark),
                    ) from None
                time.sleep(0.01)
        state = {
            "pid": proc.pid,
            "port": port,
            "password": password,
            "version": version.split()[0],
            "major": major,
            "bindir": str(self.binaries.bindir),
        }
        tmp = self.paths.state.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        os.chmod(tmp, 0o600)
        tmp.replace(self.paths.state)
        return self._info(state)

    # ------------------------------------------------------------------ stop

    def stop(self, timeout: float = 20.0) -> bool:
        """Stop the server if it runs (fast shutdown, then harder). True if one was stopped."""
        pid = postmaster_pid(self.paths)
        if pid is None or not pid_alive(pid) or not _is_postmaster_of(pid, self.paths.data):
            return False
        for sig, wait in ((signal.SIGINT, timeout), (signal.SIGQUIT, 5.0), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                if not pid_alive(pid):
                    return True
                time.sleep(0.02)
        return not pid_alive(pid)

    def destroy(self) -> None:
        """Stop the server and delete the whole cluster directory."""
        with FileLock(str(self.paths.lock)):
            self.stop()
            shutil.rmtree(self.paths.root, ignore_errors=True)
        with contextlib.suppress(OSError):
            self.paths.lock.unlink()


def _append(path: Path, line: str) -> None:
    with contextlib.suppress(OSError), open(path, "a") as f:
        f.write(line + "\n")


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGQUIT)


def _clean_env() -> dict[str, str]:
    """The server's environment: no PG* variables of the caller, a C locale."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    env.pop("LANG", None)
    return env
