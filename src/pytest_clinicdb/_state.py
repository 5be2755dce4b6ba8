"""What one pytest process knows about the run (kept in ``config.stash``).

The :class:`Context` is made in ``pytest_configure`` from the resolved settings:
the run's identity (shared with xdist workers through ``workerinput``), the
project's inputs and the backend.  It does no I/O until a fixture asks: the
run directory, the server, the templates and the databases are created by the
session fixtures, which hand them down the chain.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .config import Settings
    from .databases import Databases
    from .project import Project
    from .runs import Run, RunRef
    from .server import Backend, ServerInfo
    from .templates import Builder, TemplateInfo

#: Each test's reports by phase (setup, call, teardown).
PHASE_REPORTS_KEY = pytest.StashKey[dict[str, pytest.TestReport]]()


@dataclass
class Context:
    """One pytest process's view of the run."""

    settings: Settings
    run_ref: RunRef  # the run's owner: the controller, or the single process
    worker: str  # "main", or the xdist worker id
    is_owner: bool
    databases_by_server: dict[str, Databases] = field(default_factory=dict)
    #: set-up failures already reported in full (later tests get a short line)
    reported: dict[str, str] = field(default_factory=dict)
    #: clinic_db's worker per (fixture name, module or class node): see fixtures._worker_of
    workers: dict[tuple[str, object], object] = field(default_factory=dict)
    unmarked: list[str] = field(default_factory=list)
    #: templates whose checkpoints are still being made beside the tests (see close)
    detached: list[TemplateInfo] = field(default_factory=list)
    #: what to do once they are made (record them for the next chain)
    after_builds: list[Callable[[], None]] = field(default_factory=list)
    _run: Run | None = None
    _shut_down: bool = False
    session: pytest.Session | None = None

    def stop_session(self, why: str) -> None:
        """Ask pytest to stop after the current test (a set-up everything needs failed)."""
        if self.session is not None:
            self.session.shouldstop = why

    @cached_property
    def project(self) -> Project:
        from .project import Project

        return Project(self.settings)

    @cached_property
    def backend(self) -> Backend:
        from .server import backend_class

        backend: Backend = backend_class(self.settings.backend)(self.settings, self.project)
        return backend

    def builder(self) -> Builder:
        from .templates import Builder
        from .watch import tell_stderr

        return Builder(
            self.project, self.settings, self.run_ref, tell=tell_stderr, detach=self.detached.append
        )

    def run(self) -> Run:
        """The run directory (created on first use, by whichever process comes first)."""
        if self._run is None:
            from .gc import reap_dead_runs
            from .runs import Run

            self._run = Run(self.settings.cache_dir, self.run_ref, self.worker)
            self.unmarked += reap_dead_runs(self.settings.cache_dir, keep=self.run_ref.id)
        return self._run

    def databases(self, server: ServerInfo) -> Databases:
        """This process's databases on ``server``; the first time, leftovers are collected."""
        from .databases import Databases

        key = server.dsn
        if key not in self.databases_by_server:
            run = self.run()
            self.databases_by_server[key] = Databases(
                run, server, recycle=self.settings.recycle_clones
            )
            self._collect_garbage_once(run, server)
        return self.databases_by_server[key]

    def _collect_garbage_once(self, run: Run, server: ServerInfo) -> None:
        """Once per run and server (whichever process gets there first)."""
        digest = hashlib.sha256(server.dsn.encode()).hexdigest()[:12]
        try:
            fd = os.open(run.dir / f"gc-{digest}.done", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return
        os.close(fd)
        self.collect_garbage(server)

    def collect_garbage(self, server: ServerInfo) -> None:
        from .connect import connect
        from .gc import collect_garbage

        run = self.run()
        with connect(server.dsn, autocommit=True) as admin:
            dropped = collect_garbage(
                admin,
                run.ref,
                keep_templates=self.settings.keep_templates,
                unmarked=self.unmarked,
                project=self.project.id,
            )
        if dropped:
            earlier = list(run.report().get("collected", []))
            run.write_report(collected=[*earlier, *(f"{n}: {w}" for n, w in dropped)])
            if server.data_dir is not None:
                for name, _why in dropped:
                    with contextlib.suppress(OSError):
                        (server.data_dir.parent / "templates" / name).unlink()
        if server.data_dir is not None:
            self._forget_kept(server)

    def _forget_kept(self, server: ServerInfo) -> None:
        """The server stays up for kept databases only while some are left."""
        from .connect import connect
        from .marker import marked_databases

        users = server.data_dir.parent / "users" if server.data_dir else None
        kept = sorted(users.glob("kept-*.json")) if users and users.is_dir() else []
        if not kept:
            return
        with connect(server.dsn, autocommit=True) as admin:
            owners = {
                m.owner_ref.id
                for _, m in marked_databases(admin)
                if m is not None and m.kind == "kept" and m.owner_ref is not None
            }
        for path in kept:
            if path.stem[len("kept-") :] not in owners:
                path.unlink(missing_ok=True)

    def close(self, *, cancel: bool = False) -> None:
        """This process is done with the run: what it made beside the tests is waited for
        (``cancel``: stopped) and recorded, its clones dropped, its connections closed."""
        while self.detached:
            self.detached.pop().finish_beside(cancel=cancel)
        while self.after_builds:
            with contextlib.suppress(OSError):  # a record lost: the next edit rebuilds more
                self.after_builds.pop()()
        for databases in self.databases_by_server.values():
            databases.close()

    @property
    def run_dir(self) -> Path:
        from .runs import RUN_DIR_PREFIX

        return self.settings.cache_dir / f"{RUN_DIR_PREFIX}{self.run_ref.id}"

    def shutdown(self) -> None:
        """Owner only: release what the run started and delete its directory.

        When ``--clinicdb-keep-failed`` kept databases, the server keeps running
        so their DSNs work; the next run drops them and stops it.
        """
        if self._shut_down:
            return
        self._shut_down = True
        self.close()
        from .runs import remove_run_dir, reports_of, servers_of
        from .server import backend_class

        if not self.run_dir.is_dir():
            return
        kept = any(r.get("kept") for r in reports_of(self.run_dir))
        records = servers_of(self.run_dir)
        for record in records:
            try:
                backend_class(record.backend).release(record.state, self.run_ref, keep=kept)
            except KeyError:
                continue
        if kept and any(r.state.get("per_run") for r in records):
            return  # the run's own cluster lives in its directory and stays up for them
        remove_run_dir(self.run_dir)


CONTEXT_KEY = pytest.StashKey[Context]()


def context_of(config: pytest.Config) -> Context:
    try:
        return config.stash[CONTEXT_KEY]
    except KeyError:
        raise pytest.UsageError(
            "pytest-clinicdb is not configured in this process (was the plugin disabled "
            "with -p no:clinicdb?)"
        ) from None


def report_server(run: Run, info: ServerInfo, backend: Any) -> None:
    """Leave how the server came up in this process for the terminal summary."""
    start = {"how": getattr(backend, "how", ""), **getattr(backend, "timings", {})}
    where: dict[str, object] = {"cluster": str(info.data_dir.parent)} if info.data_dir else {}
    pruned = [f"{p.name}: {why}" for p, why in getattr(backend, "pruned", [])]
    if pruned:
        where["pruned"] = pruned
    run.write_report(server=info.binaries, server_start=start, **where)
