"""The engine: server, template and test databases for one process (no pytest import).

One :class:`Engine` lives in every pytest process (the controller and each
xdist worker).  All processes of a run share the run id, hence one cluster and
one template; each worker clones the template into its own database.  The
owning process (the controller, or the single process without xdist) stops
and deletes the cluster at the end, and reaps clusters of runs that died.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from .binaries import Account, PgBinaries, find_binaries, installed, make_reachable, server_account
from .config import Settings
from .errors import ClinicDBError
from .migrations import Migration, discover
from .seeds import DEV_SEED_PATTERN, SYSTEM_SEED_PATTERN, Notice, find_seed, load_dev_seed
from .server import ServerInfo
from .server.embedded import EmbeddedCluster, pid_alive, process_start_time
from .templates import (
    PREFIX,
    TemplateInfo,
    TemplateSpec,
    clone,
    current_month,
    drop_database,
    ensure_template,
    standard_build,
)

RUN_DIR_PREFIX = "run-"


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

    def cluster(self) -> EmbeddedCluster:
        if self._cluster is None:
            binaries = make_reachable(self.binaries(), self.account(), self.settings.cache_dir)
            self._cluster = EmbeddedCluster(self.run_dir, binaries, self.account())
        return self._cluster

    def server(self) -> ServerInfo:
        def start() -> ServerInfo:
            self.migrations()  # a missing directory fails before a server starts
            self.system_seed()
            self.settings.cache_dir.mkdir(parents=True, exist_ok=True)
            os.chmod(self.settings.cache_dir, 0o755)
            reap_dead_runs(self.settings.cache_dir, keep=self.run_id)
            info = self.cluster().ensure_running(owner_pid=self.owner_pid)
            self._write_report(server=info.binaries)
            return info

        return self._once("server", start)  # type: ignore[return-value]

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
                    report = load_dev_seed(
                        conn,
                        dev_seed,
                        environment=self.settings.environment,
                        mode=self.settings.dev_seed_mode,
                    )
                    info.notices.extend(report.notices)
                    info.dev_seed = report.summary()

                build_fn: Callable[[psycopg.Connection[Any], TemplateInfo], None] = dev_build
            else:
                build_fn = base_build
            info = ensure_template(server, spec, build=build_fn)
            self._write_report(
                **{
                    f"template_{variant}": {
                        "key": info.key,
                        "built": info.built,
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

    def _write_report(self, **fields: object) -> None:
        """Leave what this process learnt for the controller's terminal summary."""
        path = self.run_dir / f"report-{self.worker_id}.json"
        with contextlib.suppress(OSError, ValueError):
            data = json.loads(path.read_text()) if path.exists() else {"worker": self.worker_id}
            data.update(fields)
            path.write_text(json.dumps(data))

    def reports(self) -> list[dict[str, object]]:
        found = []
        for path in sorted(self.run_dir.glob("report-*.json")):
            with contextlib.suppress(OSError, ValueError):
                found.append(json.loads(path.read_text()))
        return found

    # ------------------------------------------------------------ databases

    def new_database(self, kind: str, variant: str = "base") -> str:
        """Clone the template into a new database of this process; return its name."""
        template = self.template(variant)
        name = f"{PREFIX}{kind}_{self.run_id}_{self.worker_id}_{next(self._counter)}"
        clone(
            self.admin(),
            template.name,
            name,
            self.server().major,
            run=self.run_id,
            worker=self.worker_id,
            pid=os.getpid(),
        )
        return name

    def drop(self, name: str) -> None:
        drop_database(self.admin(), name)

    def close(self) -> None:
        if self._admin is not None:
            with contextlib.suppress(psycopg.Error):
                self._admin.close()
            self._admin = None

    def shutdown(self) -> None:
        """Owner only: stop the run's server and delete its directory."""
        self.close()
        if self.run_dir.exists():
            EmbeddedCluster(self.run_dir, _NO_BINARIES, None).destroy()


_NO_BINARIES = PgBinaries(Path("/nonexistent"), "0", 0, "none")


def _alternatives(missing: list[str]) -> list[str]:
    """Installed builds that ship every extension in ``missing``."""
    return [b.describe() for b in installed() if all(b.has_extension(e) for e in missing)]


def reap_dead_runs(cache_dir: Path, *, keep: str) -> list[Path]:
    """Stop and delete the clusters of runs whose owning pytest process is gone.

    That happens when pytest was killed (``kill -9``, an OOM kill, a CI timeout).
    """
    reaped: list[Path] = []
    if not cache_dir.is_dir():
        return reaped
    for run_dir in cache_dir.glob(f"{RUN_DIR_PREFIX}*"):
        if not run_dir.is_dir() or run_dir.name == f"{RUN_DIR_PREFIX}{keep}":
            continue
        try:
            owner = json.loads((run_dir / "owner.json").read_text())
            pid = int(owner["pid"])
            alive = pid_alive(pid) and process_start_time(pid) == owner.get("start")
        except (OSError, ValueError, KeyError, TypeError):
            # No owner file: a cluster still being created, or one that failed
            # before writing it.  Reap only if it has been lying there a while.
            try:
                age = dt.datetime.now().timestamp() - run_dir.stat().st_mtime
            except OSError:
                continue
            alive = age < 600
        if not alive:
            EmbeddedCluster(run_dir, _NO_BINARIES, None).destroy()
            shutil.rmtree(run_dir, ignore_errors=True)
            reaped.append(run_dir)
    return reaped


def template_reports(reports: list[dict[str, object]]) -> list[dict[str, object]]:
    """The per-template entries of the processes' reports, each with its variant and worker."""
    found = []
    for rep in reports:
        for name, value in rep.items():
            if name.startswith("template_") and isinstance(value, dict):
                found.append(
                    {**value, "variant": name[len("template_") :], "worker": rep["worker"]}
                )
    return found


def notices_from_reports(reports: list[dict[str, object]]) -> list[Notice]:
    seen: dict[tuple[str, str, str], Notice] = {}
    for rep in template_reports(reports):
        for n in rep.get("notices", []):  # type: ignore[attr-defined]
            notice = Notice(**n)
            seen.setdefault((notice.severity, notice.message, notice.source), notice)
    return list(seen.values())


__all__ = ["ClinicDBError", "Engine", "reap_dead_runs"]
