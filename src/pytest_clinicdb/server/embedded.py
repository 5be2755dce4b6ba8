"""The embedded backend: private PostgreSQL clusters started from local binaries.

Which cluster a run uses is decided in one place, :meth:`EmbeddedBackend.cluster_root`:

- reuse on (the default): ``<cache>/cluster-<project>-pg<N>-<build>-<chain>``,
  one kept cluster per *project* and *migration chain* (the bytes of the
  bootstrap files and migrations).  Roles, role settings and tablespaces are
  cluster-wide in PostgreSQL, so a migration's ``CREATE ROLE`` stays inside its
  own project's cluster, and a changed chain is built in a cluster that never
  saw the old one — a plain ``CREATE ROLE`` builds again, and another project
  never runs with this project's ``ALTER ROLE … SET``.
- reuse off: ``<cache>/run-<id>/cluster``, deleted at the end of the run.

A new cluster is not made by initdb: it is a copy of a *pristine* data directory
that initdb made once per PostgreSQL build and server account
(``<cache>/pristine-pg<N>-<build>``), which costs a fraction of initdb.
The :class:`Launcher` is the only part that runs PostgreSQL programs; stopping
and reaping work on the :class:`~.cluster.ClusterDir` alone.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import time
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from filelock import Timeout

from ..binaries import (
    Account,
    PgBinaries,
    find_binaries,
    make_reachable,
    reachable_by,
    run_as_kwargs,
    server_account,
)
from ..errors import ConfigError, ServerDiedError, ServerStartError
from ..runs import ServerRecord
from . import ServerInfo
from .cluster import CLUSTER_DIR_PREFIX, LOCK_WAIT, ClusterDir, log_tail, stop_idle_clusters

if TYPE_CHECKING:
    from ..config import Settings
    from ..project import Project
    from ..runs import Run, RunRef

SUPERUSER = "postgres"
#: A new cluster takes 70-80 MB with a few templates; refuse to start one with less room.
MIN_FREE_BYTES = 128 << 20
#: A kept cluster's log is rotated when it starts and has grown beyond this.
LOG_ROTATE_BYTES = 4 << 20
START_TIMEOUT = 60.0
PRISTINE_PREFIX = "pristine-"

#: Settings that make a throwaway test cluster fast; durability is not needed.
SPEED_SETTINGS: dict[str, str] = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "300",
    "max_locks_per_transaction": "256",
    # Dynamic shared memory in the data directory, not /dev/shm: a killed server leaves no
    # segment behind where nothing would ever remove it.
    "dynamic_shared_memory_type": "mmap",
}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _clean_env() -> dict[str, str]:
    """The server's environment: no PG* variables of the caller, a C locale."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    env.pop("LANG", None)
    return env


def _append(path: Path, line: str) -> None:
    with contextlib.suppress(OSError), open(path, "a") as f:
        f.write(line + "\n")


def _write_private(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.chmod(tmp, 0o600)
    tmp.replace(path)


class Launcher:
    """Runs ``initdb`` and ``postgres`` of one build, as the server account when we are root."""

    def __init__(self, binaries: PgBinaries, account: Account | None) -> None:
        self.binaries = binaries
        self.account = account

    def _own(self, path: Path, mode: int) -> None:
        os.chmod(path, mode)
        if self.account is not None:
            os.chown(path, self.account.uid, self.account.gid)

    def initdb(self, data: Path, log: Path, password: str) -> None:
        data.mkdir(parents=True, exist_ok=True)
        self._own(data, 0o700)
        pwfile = data.parent / "pwfile"
        pwfile.write_text(password + "\n")
        self._own(pwfile, 0o600)
        cmd = [
            str(self.binaries.tool("initdb")),
            "-D",
            str(data),
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
            with open(log, "ab") as out:
                proc = subprocess.run(
                    cmd,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd="/",
                    check=False,
                    env=_clean_env(),
                    timeout=300,
                    **run_as_kwargs(self.account),
                )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ServerStartError(f"initdb could not run: {exc}", log_tail=log_tail(log)) from exc
        finally:
            pwfile.unlink(missing_ok=True)
        if proc.returncode != 0:
            raise ServerStartError(
                f"initdb failed with exit code {proc.returncode} ({self.binaries.describe()})",
                log_tail=log_tail(log),
            )

    def prepare(self, cluster: ClusterDir) -> None:
        """The cluster's socket directory, owned by the server account."""
        cluster.root.mkdir(parents=True, exist_ok=True)
        # The server account passes through to data/ and sock/; nobody else lists or reads it.
        os.chmod(cluster.root, 0o711)
        cluster.sock.mkdir(exist_ok=True)
        self._own(cluster.sock, 0o700)
        if not cluster.log.exists():
            cluster.log.touch()
        self._own(cluster.log, 0o600)

    def launch(
        self, cluster: ClusterDir, port: int, settings: dict[str, str], timeout: float
    ) -> tuple[int, str, int]:
        """Start the server on ``port``; return (pid, version, major) once it answers."""
        cmd = [
            str(self.binaries.tool("postgres")),
            "-D",
            str(cluster.data),
            "-p",
            str(port),
            "-k",
            str(cluster.sock),
            "-c",
            "listen_addresses=127.0.0.1",
        ]
        for key, value in settings.items():
            cmd += ["-c", f"{key}={value}"]
        mark = cluster.log.stat().st_size if cluster.log.exists() else 0
        with open(cluster.log, "ab") as log:
            proc = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd="/",
                # Its own session: Ctrl-C in the terminal does not kill it under running tests.
                start_new_session=True,
                env=_clean_env(),
                **run_as_kwargs(self.account),
            )
        # Imported while the server boots (a first database test waits for both).
        import psycopg

        dsn = psycopg.conninfo.make_conninfo(
            "", host=str(cluster.sock), port=port, user=SUPERUSER, dbname="postgres"
        )
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise ServerStartError(
                    f"PostgreSQL exited with code {proc.returncode} while starting "
                    f"({self.binaries.describe()})",
                    log_tail=log_tail(cluster.log, since=mark),
                )
            try:
                with psycopg.connect(dsn, connect_timeout=2) as conn:
                    row = conn.execute("SHOW server_version").fetchone()
                    version = str(row[0]) if row else ""
                    major = conn.info.server_version // 10000
                return proc.pid, version.split()[0], major
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(proc.pid, 3)  # SIGQUIT: immediate shutdown
                    raise ServerStartError(
                        f"PostgreSQL did not accept connections within {timeout:.0f} s",
                        log_tail=log_tail(cluster.log, since=mark),
                    ) from None
                time.sleep(0.01)


def launch_cluster(cluster: ClusterDir, launcher: Launcher, password: str) -> dict[str, Any]:
    """Start ``cluster`` on a free port (retried if another process took it); its new state."""
    with contextlib.suppress(OSError):
        (cluster.data / "postmaster.pid").unlink()  # stale: its process is gone
    with contextlib.suppress(OSError):
        if cluster.log.stat().st_size > LOG_ROTATE_BYTES:
            cluster.log.replace(cluster.log.with_suffix(".log.1"))
    launcher.prepare(cluster)
    last: ServerStartError | None = None
    for _attempt in range(3):
        port = _free_port()
        try:
            pid, version, major = launcher.launch(cluster, port, SPEED_SETTINGS, START_TIMEOUT)
        except ServerStartError as exc:
            last = exc
            if "could not bind" in exc.log_tail or "in use" in exc.log_tail:
                continue
            raise
        state = {
            "pid": pid,
            "port": port,
            "password": password,
            "version": version,
            "major": major,
            "bindir": str(launcher.binaries.bindir),
        }
        _write_private(cluster.state_file, state)
        return state
    assert last is not None
    raise last


def start_standalone(root: Path, binaries: PgBinaries, account: Account | None) -> ServerInfo:
    """A cluster outside the plugin's cache layout (a CI service, a test's own server).

    initdb on first use, started unless it runs; stop it with ``ClusterDir(root).destroy()``.
    """
    cluster = ClusterDir(root)
    launcher = Launcher(binaries, account)
    root.parent.mkdir(parents=True, exist_ok=True)
    with cluster.file_lock():
        state = cluster.state()
        if state is not None and cluster.running():
            return info_of(cluster, state, binaries.describe(), False)
        launcher.prepare(cluster)
        if cluster.initdb_done.exists() and state and state.get("password"):
            password = str(state["password"])
        else:
            shutil.rmtree(cluster.data, ignore_errors=True)
            password = secrets.token_urlsafe(18)
            launcher.initdb(cluster.data, cluster.log, password)
            cluster.initdb_done.write_text("ok\n")
        return info_of(
            cluster, launch_cluster(cluster, launcher, password), binaries.describe(), False
        )


def _drop_what_the_chain_cannot_use(admin: Any, prefix_keys: set[str]) -> None:
    """In a copy of an earlier chain's cluster, drop the templates (built for that chain)
    and the checkpoints of prefixes this chain does not have: the earlier chain's own
    cluster keeps them, and each later copy would carry them again."""
    from ..databases import drop_database
    from ..marker import marked_databases

    for name, marker in marked_databases(admin):
        if marker is None:
            continue
        if marker.kind == "template" or (
            marker.kind == "checkpoint" and marker.key not in prefix_keys
        ):
            drop_database(admin, name)


def info_of(
    cluster: ClusterDir, state: dict[str, Any], binaries: str, hermetic: bool
) -> ServerInfo:
    return ServerInfo(
        backend="embedded",
        host=str(cluster.sock),
        port=int(state["port"]),
        user=SUPERUSER,
        password=None,  # the unix socket trusts the local account; TCP needs the password
        version=str(state["version"]),
        major=int(state["major"]),
        data_dir=cluster.data,
        log_path=cluster.log,
        binaries=binaries,
        tcp_port=int(state["port"]),
        hermetic=hermetic,
    )


class EmbeddedBackend:
    """Local binaries: a kept cluster per project and migration chain (see the module docstring)."""

    name: ClassVar[str] = "embedded"

    def __init__(self, settings: Settings, project: Project) -> None:
        self.settings = settings
        self.project = project
        #: How the server came up in this process: initdb/copy/start seconds.
        self.timings: dict[str, float] = {}
        self.how = ""
        #: Kept clusters removed (earlier chains of this project, gone projects …) and why.
        self.pruned: list[tuple[Path, str]] = []

    # ------------------------------------------------------------ inputs

    @cached_property
    def found(self) -> PgBinaries:
        """The binaries discovery chose (before any relocation)."""
        s = self.settings
        return find_binaries(s.pg_bin, s.source_of("pg_bin"), s.pg_version)

    @cached_property
    def account(self) -> Account | None:
        return server_account(self.settings.run_as)

    @cached_property
    def binaries(self) -> PgBinaries:
        """The binaries as the server account can run them (copied into the cache if needed)."""
        return make_reachable(self.found, self.account, self.settings.cache_dir)

    def build_id(self) -> str:
        """The PostgreSQL build and server account: a cluster never changes hands."""
        found = self.found
        ident = f"{os.path.realpath(found.bindir)}\0{found.version}\0"
        ident += self.account.name if self.account else str(os.geteuid())
        return f"pg{found.major}-" + hashlib.sha256(ident.encode()).hexdigest()[:8]

    def describe(self) -> str:
        who = f", server runs as {self.account.name}" if self.account else ""
        return f"backend embedded, {self.found.describe()}{who}"

    # ------------------------------------------------------------ where

    def cluster_root(self, run: Run | None) -> Path:
        """The one place that decides which cluster holds this project's templates."""
        if not self.settings.reuse:
            if run is None:
                raise ValueError("a run directory is needed without reuse")
            return run.dir / "cluster"
        name = f"{CLUSTER_DIR_PREFIX}{self.project.id}-{self.build_id()}-{self.project.chain_key}"
        return self.settings.cache_dir / name

    def pristine_root(self) -> Path:
        return self.settings.cache_dir / f"{PRISTINE_PREFIX}{self.build_id()}"

    # ------------------------------------------------------------ start

    def start(self, run: Run) -> ServerInfo:
        cluster = ClusterDir(self.cluster_root(run))
        from ..gc import prune_clusters

        stop_idle_clusters(self.settings.cache_dir, skip=cluster.root)
        if self.settings.reuse:
            self.pruned = prune_clusters(
                self.settings.cache_dir,
                self.project.id,
                keep=self.settings.keep_templates,
                skip=cluster.root,
            )
        binaries = self.binaries
        launcher = Launcher(binaries, self.account)
        # Recorded before anything starts: a run killed in the middle is still reaped.
        run.record_server(
            ServerRecord(
                self.name, {"cluster": str(cluster.root), "per_run": not self.settings.reuse}
            )
        )
        cluster.root.parent.mkdir(parents=True, exist_ok=True)
        with cluster.file_lock():
            info = self._attach(cluster)
            if info is None:
                info = self._start(cluster, launcher)
            else:
                self.how = "attached to the running server"
            cluster.register(run.ref)
        cluster.write_meta(
            project=self.project.id,
            project_paths=[str(p) for p in self.project.identity_paths],
            chain=self.project.chain_key,
            build=self.build_id(),
            last_used=time.time(),
        )
        return info

    def _attach(self, cluster: ClusterDir) -> ServerInfo | None:
        state = cluster.state()
        if state is None or not cluster.running():
            return None
        import psycopg

        info = info_of(cluster, state, self.binaries.describe(), self.settings.reuse)
        try:
            with psycopg.connect(info.dsn, connect_timeout=5):
                return info
        except psycopg.Error:
            # Shutting down (the previous run released it without waiting): let it finish.
            cluster.wait_stopped()
            return None

    def _start(self, cluster: ClusterDir, launcher: Launcher) -> ServerInfo:
        state = cluster.state()
        if cluster.initdb_done.exists() and state and state.get("password"):
            try:
                return self._launch(
                    cluster, launcher, str(state["password"]), "started the kept cluster"
                )
            except ServerStartError as exc:
                # A kept cluster that no longer starts (a crash mid-write, a full disk):
                # it only ever holds rebuildable templates, so start over.
                _append(cluster.log, f"pytest-clinicdb: making the cluster again: {exc.message}")
        free = shutil.disk_usage(cluster.root.parent).free
        if free < MIN_FREE_BYTES:
            raise ConfigError(
                f"cache directory {cluster.root.parent} has {free >> 20} MiB free; a new "
                f"cluster needs about {MIN_FREE_BYTES >> 20} MiB",
                hint="free some space there, or choose another directory with "
                "--clinicdb-cache-dir (env CLINICDB_CACHE_DIR)",
            )
        if self.account is not None and not reachable_by(cluster.root.parent, self.account):
            raise ConfigError(
                f"cache directory {cluster.root.parent} is not reachable by account "
                f"{self.account.name}, which runs the server because pytest runs as root",
                hint="choose a directory every account can traverse with --clinicdb-cache-dir "
                "(e.g. under /tmp or /dev/shm)",
            )
        try:
            resumed = self._from_earlier_chain(cluster, launcher)
            if resumed is not None:
                return resumed
            self._wipe(cluster)
            launcher.prepare(cluster)
            password = self._copy_pristine(cluster, launcher)
            cluster.initdb_done.write_text("ok\n")
            how = "new cluster (initdb)" if "initdb" in self.timings else "new cluster (copy)"
            return self._launch(cluster, launcher, password, how)
        except BaseException:
            self._wipe(cluster)
            raise

    def _from_earlier_chain(self, cluster: ClusterDir, launcher: Launcher) -> ServerInfo | None:
        """A new chain's cluster as a copy of an earlier chain's, when that one holds a
        checkpoint of a prefix of the new chain (an edit of the newest migration, a new one).

        Only while the copy's cluster-wide state (roles, role settings …) is what it was at the
        checkpoint: otherwise the copy is thrown away and the cluster starts from the pristine
        data directory, so a rebuild never meets a role an earlier chain created.
        """
        import psycopg

        from ..templates import cluster_state
        from .cluster import clusters

        keys = self.project.prefix_keys(self.found.major)
        best: tuple[int, ClusterDir, str] | None = None
        for other in clusters(self.settings.cache_dir):
            meta = other.meta()
            if other.root == cluster.root or meta.get("project") != self.project.id:
                continue
            if meta.get("build") != self.build_id() or not other.initdb_done.exists():
                continue
            saved = meta.get("checkpoints", {})
            for count in range(len(keys) - 1, 0, -1):
                if keys[count] in saved and (best is None or count > best[0]):
                    best = (count, other, str(saved[keys[count]]))
                    break
        if best is None:
            return None
        count, source, expected = best
        state = source.state()
        try:
            # Held only for moments (the reaper stopping the server as the run before ended):
            # wait for it rather than build from scratch.
            with source.file_lock(timeout=LOCK_WAIT):
                if source.live_users() or not state:
                    return None
                # No run uses it: it is still shutting down (the run before did not wait
                # for that), or kept idle.  Either way it stops before its files are copied.
                if source.running() and not source.stop():
                    return None
                self._wipe(cluster)
                launcher.prepare(cluster)
                t0 = time.perf_counter()
                _copy_tree(source.data, cluster.data)
                self.timings["copy"] = time.perf_counter() - t0
        except Timeout:
            return None
        cluster.initdb_done.write_text("ok\n")
        how = f"new cluster (copy of the earlier chain's, with its checkpoint after {count})"
        info = self._launch(cluster, launcher, str(state["password"]), how)
        with psycopg.connect(info.dsn, autocommit=True) as admin:
            if cluster_state(admin) == expected:
                _drop_what_the_chain_cannot_use(admin, set(keys))
                return info
        cluster.stop()
        self._wipe(cluster)
        return None

    def _copy_pristine(self, cluster: ClusterDir, launcher: Launcher) -> str:
        """Fill the cluster's data directory from the pristine copy (made by initdb once)."""
        from filelock import FileLock

        pristine = self.pristine_root()
        done = pristine / "pristine.json"
        pristine.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(pristine) + ".lock"):
            if not done.exists():
                shutil.rmtree(pristine, ignore_errors=True)
                pristine.mkdir()
                os.chmod(pristine, 0o711)
                password = secrets.token_urlsafe(18)
                t0 = time.perf_counter()
                launcher.initdb(pristine / "data", cluster.log, password)
                self.timings["initdb"] = time.perf_counter() - t0
                _write_private(done, {"password": password, "bindir": str(self.binaries.bindir)})
            password = str(json.loads(done.read_text())["password"])
        t0 = time.perf_counter()
        _copy_tree(pristine / "data", cluster.data)
        self.timings["copy"] = time.perf_counter() - t0
        return password

    def _launch(
        self, cluster: ClusterDir, launcher: Launcher, password: str, how: str
    ) -> ServerInfo:
        from ..reaper import spawn

        t0 = time.perf_counter()
        state = launch_cluster(cluster, launcher, password)
        # Whatever ends pytest (kill -9 included), the server is stopped once no run uses it.
        spawn(cluster)
        self.timings["start"] = time.perf_counter() - t0
        self.how = how
        return info_of(cluster, state, self.binaries.describe(), self.settings.reuse)

    @staticmethod
    def _wipe(cluster: ClusterDir) -> None:
        cluster.initdb_done.unlink(missing_ok=True)
        cluster.state_file.unlink(missing_ok=True)
        shutil.rmtree(cluster.data, ignore_errors=True)
        shutil.rmtree(cluster.users, ignore_errors=True)
        shutil.rmtree(cluster.templates, ignore_errors=True)

    # ------------------------------------------------------------ lifecycle

    @classmethod
    def died(cls, info: ServerInfo) -> ServerDiedError | None:
        if info.data_dir is None:
            return None
        cluster = ClusterDir(info.data_dir.parent)
        if cluster.running():
            return None
        return ServerDiedError(
            f"the PostgreSQL server died during the session ({info.binaries})",
            log_tail=log_tail(cluster.log),
            hint="the tests that were using it failed; the next run starts a new server",
        )

    @classmethod
    def release(cls, state: dict[str, Any], run: RunRef, *, keep: bool) -> None:
        from ..runs import RunRef as Ref

        cluster = ClusterDir(Path(str(state["cluster"])))
        if state.get("per_run") and not keep:
            cluster.destroy()
            return
        pid = cluster.postmaster_pid()
        if keep and pid is not None:
            # Databases kept by --clinicdb-keep-failed: the server stays up for them (a user
            # alive as long as the server), until the next run drops them.
            cluster.register(Ref.of(f"kept-{run.id}", pid))
        # The server's own shutdown needs no witness: pytest exits while it finishes (the next
        # start waits for it, the reaper watches it).
        cluster.release(run.id, stop=not keep, wait=False)

    @classmethod
    def reap(cls, state: dict[str, Any], run_id: str) -> None:
        cluster = ClusterDir(Path(str(state["cluster"])))
        if state.get("per_run"):
            cluster.destroy()
        else:
            cluster.release(run_id, stop=True)


def _copy_tree(src: Path, dest: Path) -> None:
    """Copy a data directory keeping owners and modes (``cp -a`` is several times faster)."""
    shutil.rmtree(dest, ignore_errors=True)
    cp = shutil.which("cp")
    if cp is not None:
        proc = subprocess.run([cp, "-a", str(src), str(dest)], capture_output=True, check=False)
        if proc.returncode == 0:
            return
        shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(src, dest, symlinks=True)
    st = src.stat()
    for dirpath, dirnames, filenames in os.walk(dest):
        for name in [dirpath, *(os.path.join(dirpath, n) for n in dirnames + filenames)]:
            os.lchown(name, st.st_uid, st.st_gid)
