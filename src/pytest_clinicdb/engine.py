"""The engine: server, template and test databases for one process (no pytest import).

One :class:`Engine` lives in every pytest process (the controller and each
xdist worker).  All processes of a run share the run id, hence one server and
one template per content key; each worker clones the template into its own
database.

Where the server lives:

- ``reuse`` on (the default): ``<cache>/cluster-pg<N>-<hash>``, one cluster per
  PostgreSQL build and server account, kept between runs with its templates.
  Runs register in it while they use it; the last one to finish stops the
  server (the data stays), so nothing keeps running after pytest exits.
- ``reuse`` off: ``<cache>/run-<id>``, created for the run and deleted at its end.

``<cache>/run-<id>`` always holds the run's owner file and the per-process
reports the controller's terminal summary reads.  The owning process (the
controller, or the single process without xdist) cleans up at the end, and the
next run reaps what a killed run left (directories, servers, databases).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import itertools
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from filelock import FileLock, Timeout

from .binaries import Account, PgBinaries, find_binaries, installed, make_reachable, server_account
from .config import Settings
from .errors import ClinicDBError, ConfigError, ServerDiedError
from .migrations import Migration, discover
from .pool import ClonePool
from .runs import RunRef
from .seeds import DEV_SEED_PATTERN, SYSTEM_SEED_PATTERN, find_seed, load_dev_seed
from .server import ServerInfo
from .server.docker import STATE as DOCKER_STATE
from .server.docker import DockerServer, image_for
from .server.embedded import SPEED_SETTINGS, EmbeddedCluster, log_tail
from .server.external import connect_external
from .templates import (
    PREFIX,
    TemplateInfo,
    TemplateSpec,
    clone,
    collect_garbage,
    current_month,
    drop_database,
    ensure_template,
    set_marker,
    standard_build,
)

RUN_DIR_PREFIX = "run-"
CLUSTER_DIR_PREFIX = "cluster-"
#: ``run-<id>/databases``: every database name, written just before it is created.
JOURNAL = "databases"


@dataclass
class _Memo:
    """Caches a result or the error it raised, so a failure is not retried per test."""

    value: object = None
    error: BaseException | None = None
    done: bool = False


@dataclass
class Engine:
    settings: Settings
    run_id: str
    worker_id: str
    owner_pid: int
    is_owner: bool
    _memo: dict[str, _Memo] = field(default_factory=dict)
    _counter: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _admin: psycopg.Connection[Any] | None = None
    _cluster: EmbeddedCluster | None = None
    _clones: list[float] = field(default_factory=list)
    _drops: list[float] = field(default_factory=list)
    _shut_down: bool = False
    _pools: dict[str, ClonePool] = field(default_factory=dict)
    _unmarked: list[str] = field(default_factory=list)

    @property
    def run(self) -> RunRef:
        """This run (its owning process), as recorded in the databases it creates."""
        return self._once("run", lambda: RunRef.of(self.run_id, self.owner_pid))  # type: ignore[return-value]

    # ------------------------------------------------------------ memoising

    def _once(self, key: str, fn: object) -> object:
        memo = self._memo.setdefault(key, _Memo())
        if not memo.done:
            try:
                memo.value = fn()  # type: ignore[operator]
            except BaseException as exc:
                memo.error = exc
                memo.done = True
                raise
            memo.done = True
        if memo.error is not None:
            raise memo.error
        return memo.value

    def failed(self) -> BaseException | None:
        for memo in self._memo.values():
            if memo.error is not None:
                return memo.error
        return None

    # ------------------------------------------------------------ inputs

    def binaries(self) -> PgBinaries:
        def find() -> PgBinaries:
            s = self.settings
            return find_binaries(s.pg_bin, s.source_of("pg_bin"), s.pg_version)

        return self._once("binaries", find)  # type: ignore[return-value]

    def account(self) -> Account | None:
        return self._once("account", lambda: server_account(self.settings.run_as))  # type: ignore[return-value]

    def migrations(self) -> list[Migration]:
        return self._once("migrations", lambda: discover(self.settings.migrations))  # type: ignore[return-value]

    def system_seed(self) -> Path | None:
        seeds = self.settings.seeds
        if seeds is None:
            return None
        return self._once(  # type: ignore[return-value]
            "system_seed", lambda: find_seed(seeds, SYSTEM_SEED_PATTERN, "system seed")
        )

    def dev_seed(self) -> Path:
        seeds = self.settings.seeds
        if seeds is None:
            raise ClinicDBError(
                "the dev seed was requested but seeds are disabled (--clinicdb-seeds none)",
                hint="point --clinicdb-seeds at the directory holding 002_*.sql",
            )
        return self._once(  # type: ignore[return-value]
            "dev_seed", lambda: find_seed(seeds, DEV_SEED_PATTERN, "dev seed")
        )

    def spec(self, major: int, variant: str = "base") -> TemplateSpec:
        seed = self.system_seed()
        seeds = [seed] if seed else []
        if variant == "dev":
            seeds.append(self.dev_seed())
            variant = f"dev:{self.settings.dev_seed_mode}:{self.settings.environment}"
            if self.settings.dev_seed_tables is not None:
                variant += ":" + ",".join(self.settings.dev_seed_tables)
        return TemplateSpec(
            major=major,
            migrations=self.migrations(),
            seeds=seeds,
            partition_start=current_month(),
            variant=variant,
        )

    # ------------------------------------------------------------ server

    @property
    def run_dir(self) -> Path:
        return self.settings.cache_dir / f"{RUN_DIR_PREFIX}{self.run_id}"

    def cluster_root(self) -> Path:
        """The cluster directory: per run, or (reuse) per PostgreSQL build and account."""
        if not self.settings.reuse:
            return self.run_dir
        binaries = self.binaries()
        account = self.account()
        ident = f"{os.path.realpath(binaries.bindir)}\0{binaries.version}\0"
        ident += account.name if account else str(os.geteuid())
        digest = hashlib.sha256(ident.encode()).hexdigest()[:10]
        return self.settings.cache_dir / f"{CLUSTER_DIR_PREFIX}pg{binaries.major}-{digest}"

    def cluster(self) -> EmbeddedCluster:
        if self._cluster is None:
            binaries = make_reachable(self.binaries(), self.account(), self.settings.cache_dir)
            self._cluster = EmbeddedCluster(self.cluster_root(), binaries, self.account())
        return self._cluster

    def docker(self) -> DockerServer:
        image = image_for(self.settings.image, self.settings.pg_version)
        return DockerServer(self.run_dir, image, SPEED_SETTINGS)

    def server(self) -> ServerInfo:
        def start() -> ServerInfo:
            self.migrations()  # a missing directory fails before a server starts
            self.system_seed()
            cache = self.settings.cache_dir
            try:
                cache.mkdir(parents=True, exist_ok=True)
                os.chmod(cache, 0o755)
                self._write_owner()
                probe = cache / f".write-test-{os.getpid()}"
                probe.write_bytes(b"x" * 4096)
                probe.unlink()
            except OSError as exc:
                raise ConfigError(
                    f"cache directory {cache} is not usable: {exc.strerror or exc}",
                    hint="free some space there, or choose another directory with "
                    "--clinicdb-cache-dir (env CLINICDB_CACHE_DIR)",
                ) from None
            self._unmarked += reap_dead_runs(cache, keep=self.run_id)
            backend = self.settings.backend
            where: dict[str, object] = {}
            start: dict[str, object]
            t0 = time.perf_counter()
            if backend == "external":
                assert self.settings.dsn is not None
                info = connect_external(self.settings.dsn, pg_version=self.settings.pg_version)
                how = "connected to the external server"
                start = {"how": how, "connect": time.perf_counter() - t0}
            elif backend == "docker":
                info = self.docker().ensure_running()
                start = {"how": "docker container", "start": time.perf_counter() - t0}
            else:
                cluster = self.cluster()
                stop_idle_clusters(cache, skip=cluster.paths.root)
                info = cluster.ensure_running(user=self.run)
                start = {"how": cluster.how, **cluster.timings}
                where["cluster"] = str(cluster.paths.root)
            self._write_report(server=info.binaries, server_start=start, **where)
            self._collect_garbage_once(info)
            return info

        return self._once("server", start)  # type: ignore[return-value]

    def _write_owner(self) -> None:
        """``run-<id>/owner.json``: lets the next run reap this one's leftovers if it dies."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.run_dir, 0o755)
        owner = self.run_dir / "owner.json"
        if not owner.exists():
            tmp = owner.with_name(f"owner.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(self.run.to_dict()))
            tmp.replace(owner)

    def _collect_garbage_once(self, server: ServerInfo) -> None:
        """Session start: drop what dead runs and old builds left (once per run)."""
        try:
            fd = os.open(self.run_dir / "gc.done", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return
        os.close(fd)
        self._collect_garbage(server)

    def _collect_garbage(self, server: ServerInfo) -> None:
        with psycopg.connect(server.dsn, autocommit=True) as admin:
            dropped = collect_garbage(
                admin,
                self.run,
                keep_templates=self.settings.keep_templates,
                unmarked=self._unmarked,
            )
        if dropped:
            earlier = list(self._report().get("collected", []))  # type: ignore[call-overload]
            collected = [*earlier, *(f"{n}: {w}" for n, w in dropped)]
            self._write_report(collected=collected)
            for name, _why in dropped:
                (self._index / name).unlink(missing_ok=True)

    @property
    def _index(self) -> Path:
        """``<cluster>/templates/``: one empty file per template the server holds."""
        return self.cluster_root() / "templates"

    def template_hint(self, variant: str = "base") -> str:
        """For the report header, before any server starts: the key and what will happen."""
        spec = self.spec(self.binaries().major, variant)
        if self.settings.rebuild:
            status = "will be rebuilt (--clinicdb-rebuild)"
        elif self.settings.reuse and (self._index / spec.name).exists():
            status = "kept from an earlier run, reused unless removed since"
        else:
            status = "not built yet"
        return f"template {spec.key} ({variant}): {status}"

    def server_died(self) -> ServerDiedError | None:
        """After a connection error: the server's death, with its log tail, or None if it lives."""
        memo = self._memo.get("server")
        if memo is None or memo.value is None:
            return None
        info: ServerInfo = memo.value  # type: ignore[assignment]
        if self._cluster is not None:
            if self._cluster.running():
                return None
            return ServerDiedError(
                f"the PostgreSQL server died during the session ({info.binaries})",
                log_tail=log_tail(self._cluster.paths.log),
                hint="the tests that were using it failed; the next run starts a new server",
            )
        try:
            psycopg.connect(info.dsn, connect_timeout=3).close()
        except psycopg.Error as exc:
            return ServerDiedError(
                f"lost the {info.backend} server during the session: {str(exc).strip()}",
                hint="check the server; the next run reconnects",
            )
        return None

    def admin(self) -> psycopg.Connection[Any]:
        """An autocommit connection to the maintenance database (one per process)."""
        if self._admin is None or self._admin.closed:
            self._admin = psycopg.connect(self.server().dsn, autocommit=True)
        return self._admin

    # ------------------------------------------------------------ template

    def template(self, variant: str = "base") -> TemplateInfo:
        """The template of ``variant``: ``base`` (migrations + 001) or ``dev`` (+ 002)."""

        def build() -> TemplateInfo:
            server = self.server()
            spec = self.spec(server.major, variant)
            seed = self.system_seed()
            binaries = self.binaries()
            base_build = standard_build(
                self.migrations(),
                seed,
                spec,
                binaries_note=binaries.describe(),
                alternatives=_alternatives,
            )
            if variant == "dev":
                dev_seed = self.dev_seed()

                def dev_build(conn: psycopg.Connection[Any], info: TemplateInfo) -> None:
                    base_build(conn, info)
                    t0 = time.perf_counter()
                    report = load_dev_seed(
                        conn,
                        dev_seed,
                        environment=self.settings.environment,
                        mode=self.settings.dev_seed_mode,
                        tables=self.settings.dev_seed_tables,
                        external=self.settings.backend == "external",
                        allow_external=self.settings.allow_external_dev_seed,
                    )
                    info.notices.extend(report.notices)
                    info.dev_seed = report.summary()
                    info.timings[f"dev seed {dev_seed.name}"] = time.perf_counter() - t0

                build_fn: Callable[[psycopg.Connection[Any], TemplateInfo], None] = dev_build
            else:
                build_fn = base_build
            info = ensure_template(
                server, spec, build=build_fn, run=self.run, rebuild=self.settings.rebuild
            )
            with contextlib.suppress(OSError):
                self._index.mkdir(exist_ok=True)
                (self._index / info.name).touch()
            if info.built:
                self._collect_garbage(server)  # the cap counts the template just built
            self._write_report(
                **{
                    f"template_{variant}": {
                        "key": info.key,
                        "built": info.built,
                        "rebuilt": info.rebuilt,
                        "built_at": info.built_at,
                        "seconds": info.seconds,
                        "timings": info.timings,
                        "notices": [n.to_dict() for n in info.notices],
                        "partitions": info.partitions,
                        "dev_seed": info.dev_seed,
                    }
                }
            )
            return info

        return self._once(f"template:{variant}", build)  # type: ignore[return-value]

    def _report(self) -> dict[str, object]:
        path = self.run_dir / f"report-{self.worker_id}.json"
        with contextlib.suppress(OSError, ValueError):
            data = json.loads(path.read_text())
            if isinstance(data, dict):
                return data
        return {"worker": self.worker_id}

    def _write_report(self, **fields: object) -> None:
        """Leave what this process learnt for the controller's terminal summary."""
        path = self.run_dir / f"report-{self.worker_id}.json"
        with contextlib.suppress(OSError, ValueError):
            self.run_dir.mkdir(parents=True, exist_ok=True)
            data = self._report()
            data.update(fields)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(data))
            tmp.replace(path)

    def reports(self) -> list[dict[str, Any]]:
        found = []
        for path in sorted(self.run_dir.glob("report-*.json")):
            with contextlib.suppress(OSError, ValueError):
                found.append(json.loads(path.read_text()))
        return found

    # ------------------------------------------------------------ databases

    def _db_name(self, kind: str) -> str:
        """A new database name, journaled first (see :func:`reap_dead_runs`)."""
        name = f"{PREFIX}{kind}_{self.run_id}_{self.worker_id}_{next(self._counter)}"
        with open(self.run_dir / JOURNAL, "a") as journal:
            journal.write(name + "\n")
        return name

    def new_database(self, kind: str, variant: str = "base") -> str:
        """Clone the template into a new database of this process; return its name."""
        name = self._db_name(kind)
        for attempt in (1, 2):
            template = self.template(variant)
            t0 = time.perf_counter()
            try:
                clone(
                    self.admin(),
                    template.name,
                    name,
                    self.server().major,
                    owner=self.run.to_dict(),
                    worker=self.worker_id,
                )
            except psycopg.errors.InvalidCatalogName:
                # The template went away under us (another run's --clinicdb-rebuild or
                # its garbage collection): ensure it again, once.
                if attempt == 2:
                    raise
                self._memo.pop(f"template:{variant}", None)
                continue
            self._clones.append(time.perf_counter() - t0)
            break
        return name

    def fresh_database(self, variant: str = "base") -> str:
        """A clone for one test; after the first, made ahead by a background pool."""
        pool = self._pools.get(variant)
        if pool is not None:
            name = pool.take()
            if name is not None:
                return name
        kind = "f" if variant == "base" else "fd"
        name = self.new_database(kind, variant)
        if pool is None:
            server = self.server()
            self._pools[variant] = ClonePool(
                admin_dsn=server.dsn,
                dsn_for=server.dsn_for,
                template=self.template(variant).name,
                major=server.major,
                new_name=lambda: self._db_name(kind),
                mark={"owner": self.run.to_dict(), "worker": self.worker_id},
                clone_times=self._clones,
                drop_times=self._drops,
            )
        return name

    def release_fresh(self, name: str, variant: str = "base") -> None:
        """A test is done with its fresh clone: drop it (in the background when pooled)."""
        pool = self._pools.get(variant)
        if pool is not None and pool.error is None:
            pool.give_back(name)
        else:
            self.drop(name)

    def close_pools(self) -> None:
        """Session end: stop making clones ahead and finish the pending drops."""
        errors = []
        for pool in self._pools.values():
            errors += pool.close()
        self._pools.clear()
        if errors:
            self._write_report(drop_errors=errors)

    def drop(self, name: str) -> None:
        t0 = time.perf_counter()
        drop_database(self.admin(), name)
        self._drops.append(time.perf_counter() - t0)

    def keep(self, name: str, nodeid: str) -> str:
        """Keep a failed test's database (``--clinicdb-keep-failed``); return its DSN."""
        set_marker(self.admin(), name, "kept", owner=self.run.to_dict(), test=nodeid)
        dsn = self.server().dsn_for(name)
        kept = [*self._report().get("kept", []), {"test": nodeid, "dsn": dsn}]  # type: ignore[misc]
        self._write_report(kept=kept)
        return dsn

    def write_stats(self) -> None:
        """Leave this process's clone and drop times for ``--clinicdb-timings``."""
        if self._clones or self._drops:
            self._write_report(clones=self._clones, drops=self._drops)

    def close(self) -> None:
        self.close_pools()
        if self._admin is not None:
            with contextlib.suppress(psycopg.Error):
                self._admin.close()
            self._admin = None

    def shutdown(self) -> None:
        """Owner only: release (reuse) or delete (no reuse) the server; delete the run directory.

        When ``--clinicdb-keep-failed`` kept databases, the server keeps running so
        their DSNs work; the next run drops them and stops it.
        """
        if self._shut_down:
            return
        self._shut_down = True
        self.close()
        reports = self.reports()
        kept = any(r.get("kept") for r in reports)
        roots = {Path(str(r["cluster"])) for r in reports if r.get("cluster")}
        for root in roots - {self.run_dir}:
            EmbeddedCluster(root, _NO_BINARIES, None).release(self.run_id, stop=not kept)
        if kept and self.run_dir in roots:
            return  # the run's own cluster stays up for the kept databases
        if self.settings.backend == "docker" and not kept:
            self.docker().stop()
        if self.run_dir.exists():
            EmbeddedCluster(self.run_dir, _NO_BINARIES, None).destroy()


_NO_BINARIES = PgBinaries(Path("/nonexistent"), "0", 0, "none")


def _alternatives(missing: list[str]) -> list[str]:
    """Installed builds that ship every extension in ``missing``."""
    return [b.describe() for b in installed() if all(b.has_extension(e) for e in missing)]


def reap_dead_runs(cache_dir: Path, *, keep: str) -> list[str]:
    """Stop and delete the directories (and clusters) of runs whose owning process is gone.

    That happens when pytest was killed (``kill -9``, an OOM kill, a CI timeout).
    Returns the database names those runs journaled, for garbage collection.
    """
    journaled: list[str] = []
    if not cache_dir.is_dir():
        return journaled
    for run_dir in cache_dir.glob(f"{RUN_DIR_PREFIX}*"):
        if not run_dir.is_dir() or run_dir.name == f"{RUN_DIR_PREFIX}{keep}":
            continue
        try:
            owner = RunRef.from_dict(json.loads((run_dir / "owner.json").read_text()))
        except (OSError, ValueError):
            owner = None
        if owner is not None:
            alive = owner.alive()
        else:
            # No owner file: a run still starting, or one that failed before
            # writing it.  Reap only if it has been lying there a while.
            try:
                age = dt.datetime.now().timestamp() - run_dir.stat().st_mtime
            except OSError:
                continue
            alive = age < 600
        if not alive:
            with contextlib.suppress(OSError):
                journaled += (run_dir / JOURNAL).read_text().split()
            if (run_dir / DOCKER_STATE).exists():
                DockerServer(run_dir, "", {}).stop()
            EmbeddedCluster(run_dir, _NO_BINARIES, None).destroy()
            shutil.rmtree(run_dir, ignore_errors=True)
    return journaled


def stop_idle_clusters(
    cache_dir: Path, *, skip: Path | None, delete: bool = False
) -> dict[str, list[Path]]:
    """Stop kept servers that no live run uses (a killed run's, or one left for kept databases).

    Clusters whose PostgreSQL build is gone (an upgraded package) are deleted, and
    with ``delete`` every idle one.  A cluster whose lock is held is busy and
    left alone.  Returns the ``stopped``, ``deleted`` and ``busy`` directories.
    """
    result: dict[str, list[Path]] = {"stopped": [], "deleted": [], "busy": []}
    for root in sorted(cache_dir.glob(f"{CLUSTER_DIR_PREFIX}*")) if cache_dir.is_dir() else []:
        if root == skip or not root.is_dir():
            continue
        cluster = EmbeddedCluster(root, _NO_BINARIES, None)
        try:
            with FileLock(str(cluster.paths.lock), timeout=0):
                if cluster.live_users():
                    result["busy"].append(root)
                    continue
                if cluster.running() and cluster.stop():
                    result["stopped"].append(root)
                if delete or not _bindir_exists(cluster):
                    shutil.rmtree(root, ignore_errors=True)
                    cluster.paths.lock.unlink(missing_ok=True)
                    result["deleted"].append(root)
        except Timeout:
            result["busy"].append(root)
    return result


def _bindir_exists(cluster: EmbeddedCluster) -> bool:
    try:
        bindir = Path(json.loads(cluster.paths.state.read_text())["bindir"])
    except (OSError, ValueError, KeyError, TypeError):
        return True  # unknown: keep it
    return (bindir / "postgres").exists()


__all__ = ["ClinicDBError", "Engine", "reap_dead_runs"]
