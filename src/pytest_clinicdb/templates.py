"""Template databases: content key, build once under a lock, what each build step does.

A template holds the migrated, seeded database.  It is built once per *key* —
a hash of everything that goes into it: the PostgreSQL major version, the
bootstrap files, every migration's name and bytes, the seeds' bytes, the
build options and the audit partition window (which follows the calendar
month) — under an advisory lock taken in the maintenance database, so xdist
workers and concurrent runs on one server build it exactly once.  It is built
under a temporary name and renamed when complete: a ``clinicdb_tpl_*``
database is never half-built.  Then it is marked ``IS_TEMPLATE`` with
connections disallowed, and every test database is a clone of it.

Two variants: ``base`` (bootstrap → migrations → audit partitions → system
seed) and ``dev`` (a clone of ``base`` plus the DEV/TEST ONLY seed, loaded by
the dev-seed wrapper).  The dev template never repeats the base build.

``ALTER DATABASE … SET``, ``ALTER ROLE … IN DATABASE … SET`` and ``GRANT … ON
DATABASE`` done by a migration are not copied by ``CREATE DATABASE …
TEMPLATE`` (PostgreSQL documents this): the build reads them back into the
template's marker (``carry``) and every clone gets them again.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ClinicDBError, SQLFileError, TemplateBuildError
from .marker import (
    BUILDER_VERSION,
    PREFIX,
    Marker,
    marked_databases,
    now_iso,
    read_marker,
    write_marker,
)

if TYPE_CHECKING:
    import psycopg

    from .config import Settings
    from .migrations import Migration
    from .project import Project
    from .runs import RunRef
    from .seeds import Notice
    from .server import ServerInfo

#: A resumed build whose pending migrations took longer than this copies itself into the
#: next checkpoint instead of having a thread apply them once more (see CheckpointsBeside).
BESIDE_MAX_SECONDS = 0.5

#: Test set-up covers the current month and this many following ones.
PARTITION_MONTHS_AHEAD = 3
BUILD_LOCK_TIMEOUT = 600.0


def current_month(now: dt.datetime | None = None) -> dt.date:
    now = now or dt.datetime.now(dt.timezone.utc)
    return dt.date(now.year, now.month, 1)


def add_months(day: dt.date, months: int) -> dt.date:
    total = day.year * 12 + day.month - 1 + months
    return dt.date(total // 12, total % 12 + 1, 1)


def file_bytes(path: Path) -> bytes:
    """The bytes that decide a SQL file's result (its own and included files'), unsplit."""
    from .sqlfile import read_sql_file

    return read_sql_file(path).content_bytes()


@dataclass(frozen=True)
class TemplateSpec:
    """Everything a template is built from; its :attr:`key` names the template."""

    major: int
    variant: str
    bootstrap: Sequence[Path] = ()
    migrations: Sequence[Migration] = ()
    seeds: Sequence[Path] = ()
    partition_start: dt.date = field(default_factory=current_month)
    partition_months: int = PARTITION_MONTHS_AHEAD + 1
    #: build options that change the result (audit tables, dev-seed mode …), as text
    options: tuple[tuple[str, str], ...] = ()
    #: the dev variant is a clone of this template
    base: str | None = None

    @property
    def partition_end(self) -> dt.date:
        return add_months(self.partition_start, self.partition_months)

    @property
    def key(self) -> str:
        h = hashlib.sha256()
        h.update(
            f"builder={BUILDER_VERSION}\0major={self.major}\0variant={self.variant}\0".encode()
        )
        h.update(f"partitions={self.partition_start}+{self.partition_months}\0".encode())
        h.update(f"base={self.base}\0".encode())
        for name, value in self.options:
            h.update(f"option {name}={value}\0".encode())
        for path in self.bootstrap:
            h.update(b"bootstrap\0" + path.name.encode() + b"\0" + file_bytes(path) + b"\0")
        for mig in self.migrations:
            h.update(b"migration\0" + mig.name.encode() + b"\0" + mig.content_bytes() + b"\0")
        for seed in self.seeds:
            h.update(b"seed\0" + seed.name.encode() + b"\0" + file_bytes(seed) + b"\0")
        return h.hexdigest()[:16]

    @property
    def name(self) -> str:
        return f"{PREFIX}tpl_{self.key}"


@dataclass
class TemplateInfo:
    """A built template, the server it lives on, and how it came to be."""

    name: str
    key: str
    variant: str
    server: ServerInfo
    built: bool  # False: it already existed (reused)
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    notices: list[Notice] = field(default_factory=list)
    partitions: dict[str, Any] = field(default_factory=dict)
    dev_seed: dict[str, Any] = field(default_factory=dict)
    built_at: str = ""
    rebuilt: bool = False  # --clinicdb-rebuild replaced an earlier run's template
    carry: dict[str, Any] = field(default_factory=dict)
    #: what the runner noticed while building (ignored psql meta-commands …)
    notes: list[str] = field(default_factory=list)
    #: versioned migrations taken from a checkpoint instead of being applied (0: full build)
    resumed: int = 0
    #: checkpoints this build passed (prefix key -> cluster-wide state then)
    checkpoints: dict[str, str] = field(default_factory=dict)
    #: checkpoints still being made beside the build (see ``finish_beside``)
    beside: list[CheckpointsBeside] = field(default_factory=list, repr=False, compare=False)
    #: ensures the template again (it was dropped under us); set by the builder
    renew: Callable[[], TemplateInfo] | None = field(default=None, repr=False, compare=False)

    def finish_beside(self, *, cancel: bool = False) -> bool:
        """Wait for the checkpoints a detached build left running; True if there were any."""
        return CheckpointsBeside.finish(self.beside, self, cancel=cancel, while_="the tests ran")

    def replace_with(self, other: TemplateInfo) -> None:
        """Take ``other``'s state (the template was ensured again): holders see the new one."""
        renew = self.renew
        self.__dict__.update(other.__dict__)
        self.renew = renew

    @classmethod
    def from_marker(
        cls, name: str, server: ServerInfo, marker: Marker, rebuilt: bool
    ) -> TemplateInfo:
        from .seeds import Notice

        return cls(
            name,
            str(marker.key),
            str(marker.variant or "base"),
            server,
            built=False,
            seconds=marker.seconds,
            timings=dict(marker.timings),
            notices=[Notice(**n) for n in marker.notices],
            partitions=dict(marker.partitions),
            dev_seed=dict(marker.dev_seed),
            built_at=marker.built_at or "",
            rebuilt=rebuilt,
            carry=dict(marker.carry),
        )

    def marker(self, spec: TemplateSpec, run: RunRef | None, project: str | None) -> Marker:
        return Marker(
            "template",
            key=self.key,
            variant=self.variant,
            builder=BUILDER_VERSION,
            project=project,
            partition_start=spec.partition_start.isoformat(),
            built_at=self.built_at,
            built_by=run.to_dict() if run else None,
            users=[run.to_dict()] if run else [],
            last_used=self.built_at,
            seconds=round(self.seconds, 4),
            timings={k: round(v, 4) for k, v in self.timings.items()},
            notices=[n.to_dict() for n in self.notices],
            partitions=self.partitions,
            dev_seed=self.dev_seed,
            carry=self.carry,
        )


class BuildSession:
    """The database being built, and the build's way to keep a snapshot of it (a checkpoint).

    ``conn`` is an autocommit connection to it, opened on first use.  A
    snapshot needs it closed (``CREATE DATABASE … TEMPLATE`` refuses a source
    with sessions): :meth:`snapshot` closes it and the next use reopens it.
    """

    def __init__(
        self,
        admin: psycopg.Connection[Any],
        server: ServerInfo,
        name: str,
        *,
        timeout: float = 0,
        tell: Callable[[str], None] | None = None,
        what: str = "",
        detach: bool = False,
    ) -> None:
        from .watch import BuildWatch

        self.admin = admin
        self.server = server
        self.name = name
        self._conn: psycopg.Connection[Any] | None = None
        #: work the build does beside itself: it waits for it before it ends, or, when it
        #: ``detach``-es, starts it once the template is done and hands it to the caller
        self.beside: list[CheckpointsBeside] = []
        self.detach = detach
        self.watch = BuildWatch(
            server.dsn, self._backend_pid, timeout=timeout, tell=tell, what=what or name
        )

    def _backend_pid(self) -> int | None:
        conn = self._conn
        return conn.info.backend_pid if conn is not None and not conn.closed else None

    @property
    def conn(self) -> psycopg.Connection[Any]:
        from .connect import connect

        if self._conn is None or self._conn.closed:
            self._conn = connect(self.server.dsn_for(self.name), autocommit=True)
            if self.server.major >= 14:
                # A build whose pytest died stops at its next check instead of running on.
                self._conn.execute("SET client_connection_check_interval = '2s'")
        return self._conn

    def begin(self, step: str) -> None:
        """The build starts ``step`` (shown on the terminal if it takes a while)."""
        self.watch.begin(step)

    def failure(self, exc: BaseException) -> BaseException:
        """``exc``, or the timeout it really is when the watch cancelled the step."""
        from .errors import BuildTimeoutError, SQLFileError

        if self.watch.timed_out is None:
            return exc
        step, seconds, blockers = self.watch.timed_out
        where = ""
        if isinstance(exc, SQLFileError):
            where = f"{exc.kind} {exc.file.name}, line {exc.line}"
        return BuildTimeoutError(step, seconds, where=where, blockers=blockers)

    def join_beside(self, info: TemplateInfo, *, cancel: bool = False) -> None:
        """Wait for the work started beside the build (stopped first when ``cancel``)."""
        CheckpointsBeside.finish(self.beside, info, cancel=cancel, while_="the build ran")

    def disconnect(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def close(self) -> None:
        self.watch.close()
        self.disconnect()

    def snapshot(self, name: str, marker: Marker) -> bool:
        """Copy the database as it is now into template ``name`` unless it exists; True if made."""
        from psycopg import errors, sql

        from .connect import wait_for_no_sessions
        from .databases import create_database, drop_database

        marker.carry = read_carry(self.conn)
        self.disconnect()  # the watch goes on: the build does
        lock = build_lock_id(name)
        self.admin.execute("SELECT pg_advisory_lock(%s)", (lock,))
        try:
            if self.admin.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
            ).fetchone():
                return False
            wait_for_no_sessions(self.admin, self.name)
            try:
                create_database(self.admin, name, self.name, self.server.major)
                write_marker(self.admin, name, marker)
                self.admin.execute(
                    sql.SQL(
                        "ALTER DATABASE {} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false"
                    ).format(sql.Identifier(name))
                )
            except errors.DuplicateDatabase:
                return False
            except BaseException:
                drop_database(self.admin, name, only_if_not_template=True)
                raise
            return True
        finally:
            self.admin.execute("SELECT pg_advisory_unlock(%s)", (lock,))


class CheckpointsBeside:
    """The checkpoints of a resumed build, made in a thread beside it.

    A resumed build used to stop after the newest migration to copy itself into
    the checkpoint the next edit resumes from: a copy (and a reconnect) on the
    path to the first test.  Instead, this thread starts from the same
    checkpoint, applies the same migrations into a database of its own, and
    keeps that database as the checkpoint (renamed, not copied) — while the
    build goes on to partitions and seeds.  Both start from one checkpoint and
    apply the same files, so the checkpoint is what the serial build would have
    copied.  The build waits for the thread before it ends, unless the builder
    detaches (the plugin): then the template is ready first, the checkpoint is
    finished while the tests run, and the run waits for it before it ends
    (:meth:`TemplateInfo.finish_beside`).  Until it is renamed, the database is
    an unfinished build of this run, held by its build lock: garbage collection
    leaves it alone, and drops it once the run is gone.

    Only for migrations that stay in their database (:func:`touching_the_cluster`):
    two sessions creating the same role at once would fail; and only when they
    were quick to apply (:data:`BESIDE_MAX_SECONDS`): applying a slow data
    migration twice costs more than one copy.  A failure here is no build
    failure (the build applies the same files and reports their errors); the
    checkpoint is then missing, and ``error`` says why.  A run that is
    interrupted cancels it instead of waiting.
    """

    def __init__(
        self,
        server: ServerInfo,
        source: tuple[str, Marker],
        chain: Sequence[Migration],
        stops: Sequence[int],
        keys: Sequence[str],
        project: str,
        run: RunRef | None,
    ) -> None:
        import threading

        self.server = server
        self.source = source
        self.chain = list(chain)
        self.stops = list(stops)
        self.keys = list(keys)
        self.project = project
        self.run = run
        self.made: dict[str, str] = {}  # prefix key -> cluster-wide state, as info.checkpoints
        self.timings: dict[str, float] = {}
        self.error: str | None = None
        self._cancelled = False
        self._conns: list[psycopg.Connection[Any]] = []
        self._thread = threading.Thread(target=self._run, name="clinicdb-checkpoints", daemon=True)

    def start(self) -> CheckpointsBeside:
        self._thread.start()
        return self

    def cancel(self) -> None:
        """Stop what the thread runs on the server now (the build failed or was interrupted)."""
        self._cancelled = True
        for conn in list(self._conns):
            if not conn.closed:
                with contextlib.suppress(Exception):  # the connection went meanwhile
                    conn.cancel()

    def join(self) -> None:
        if self._thread.ident is not None:  # started
            self._thread.join()

    def _check(self) -> None:
        """Between steps: stop here once cancelled (a cancel lands only on a running query)."""
        if self._cancelled:
            raise _Cancelled

    @staticmethod
    def finish(
        works: list[CheckpointsBeside], info: TemplateInfo, *, cancel: bool, while_: str
    ) -> bool:
        """Wait for each of ``works`` (stopped first when ``cancel``), take it off the list and
        report it into ``info``; True if there were any."""
        found = bool(works)
        while works:
            work = works.pop()
            if cancel:
                work.cancel()
            work.join()
            work.report_to(info, while_=while_)
        return found

    def report_to(self, info: TemplateInfo, *, while_: str) -> None:
        """What the thread made and how long it took, into the build's record."""
        info.checkpoints.update(self.made)
        info.timings.update({f"{k} (while {while_})": v for k, v in self.timings.items()})
        if self.error and self.error != "cancelled":
            info.notes.append(
                f"the checkpoint after {self.stops[-1]} migrations was not kept ({self.error}); "
                "the next edit of the newest migration resumes from an earlier one"
            )

    def _run(self) -> None:
        from .connect import connect
        from .databases import apply_carry, create_database, drop_database
        from .migrations import apply_migrations

        name, marker = self.source
        final = self.stops[-1]
        key = self.keys[final]
        work = f"{PREFIX}build_{key}"
        admin = None
        session = None
        started = time.perf_counter()
        try:
            admin = connect(self.server.dsn, autocommit=True)
            self._conns.append(admin)
            # Garbage collection leaves an unfinished build alone while its lock is held.
            admin.execute("SELECT pg_advisory_lock(%s)", (build_lock_id(f"{PREFIX}tpl_{key}"),))
            if admin.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (f"{PREFIX}ckpt_{key}",)
            ).fetchone():
                return  # another run made it meanwhile
            drop_database(admin, work)
            self._check()
            create_database(admin, work, name, self.server.major)
            owner = self.run.to_dict() if self.run else None
            write_marker(admin, work, Marker("building", key=key, owner=owner))
            if marker.carry:
                apply_carry(admin, work, marker.carry)
            session = BuildSession(admin, self.server, work, what="checkpoint")
            for stop in self.stops:
                self._check()
                conn = session.conn
                self._conns.append(conn)
                apply_migrations(conn, self.chain[:stop], progress=lambda m: self._check())
                self._check()
                done = Marker(
                    "checkpoint",
                    key=self.keys[stop],
                    count=stop,
                    builder=BUILDER_VERSION,
                    project=self.project,
                    built_at=now_iso(),
                    cluster_state=cluster_state(conn),
                )
                if stop == final:
                    done.carry = read_carry(conn)
                    session.disconnect()
                    keep_as_checkpoint(admin, work, f"{PREFIX}ckpt_{self.keys[stop]}", done)
                else:
                    session.snapshot(f"{PREFIX}ckpt_{self.keys[stop]}", done)
                self.made[self.keys[stop]] = str(done.cluster_state)
            self.timings[f"checkpoint after {final} migrations"] = time.perf_counter() - started
        except Exception as exc:  # the build reports it as a note
            self.error = "cancelled" if self._cancelled else str(exc).splitlines()[0]
        finally:
            if session is not None:
                session.close()
            if admin is not None:
                with contextlib.suppress(Exception):  # else garbage collection finds it
                    drop_database(admin, work)  # when it was not kept
                admin.close()


class _Cancelled(Exception):
    pass


def keep_as_checkpoint(
    admin: psycopg.Connection[Any], work: str, name: str, marker: Marker
) -> bool:
    """Rename the finished database ``work`` into checkpoint ``name`` unless that exists."""
    from psycopg import errors, sql

    lock = build_lock_id(name)
    admin.execute("SELECT pg_advisory_lock(%s)", (lock,))
    try:
        if admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            return False
        try:
            admin.execute(
                sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                    sql.Identifier(work), sql.Identifier(name)
                )
            )
        except errors.DuplicateDatabase:
            return False
        write_marker(admin, name, marker)
        admin.execute(
            sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false").format(
                sql.Identifier(name)
            )
        )
        return True
    finally:
        admin.execute("SELECT pg_advisory_unlock(%s)", (lock,))


BuildStep = Callable[[BuildSession, TemplateInfo], None]


def _lock_id(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def build_lock_id(template: str) -> int:
    """The advisory lock a build of ``template`` holds (garbage collection tests it)."""
    return _lock_id("template:" + template)


def ensure_template(
    server: ServerInfo,
    spec: TemplateSpec,
    *,
    build: BuildStep,
    run: RunRef | None = None,
    rebuild: bool = False,
    source: str | Callable[[], tuple[str | None, dict[str, Any] | None]] | None = None,
    source_carry: dict[str, Any] | None = None,
    project: str | None = None,
    timeout: float = 0,
    tell: Callable[[str], None] | None = None,
    detach: bool = False,
) -> TemplateInfo:
    """Return the template for ``spec``, building it with ``build(session, info)`` if needed.

    The build starts from a clone of ``source`` (with its ``source_carry``), or
    from an empty database; ``source`` may be a function that names it, called
    only when a build is needed.  ``run`` is recorded in the template's marker
    as a user (garbage collection never drops a template a live run uses).
    ``rebuild`` drops a template that an earlier run built and builds it again
    — once per run, however many processes ask.  A failing build raises
    :class:`TemplateBuildError` (its cause chained) and leaves nothing behind.
    With ``detach`` it returns before the work the build started beside itself
    (:class:`CheckpointsBeside`) is done: ``info.finish_beside()`` waits for it.
    """
    import psycopg

    from .connect import connect
    from .databases import drop_database

    name = spec.name
    with connect(server.dsn, autocommit=True) as admin:
        admin.execute(
            "SELECT set_config('lock_timeout', %s, false)", (f"{int(BUILD_LOCK_TIMEOUT * 1000)}",)
        )
        admin.execute("SELECT pg_advisory_lock(%s)", (build_lock_id(name),))
        try:
            row = admin.execute(
                "SELECT datistemplate FROM pg_database WHERE datname = %s", (name,)
            ).fetchone()
            marker = read_marker(admin, name) if row else None
            built_by = marker.built_by_ref if marker else None
            this_run = run is not None and built_by is not None and built_by.id == run.id
            if row and row[0] and marker is not None and (this_run or not rebuild):
                write_marker(admin, name, marker.with_user(run))
                return TemplateInfo.from_marker(name, server, marker, rebuilt=this_run)
            if row:  # never completed (a crash between rename and marking), or a rebuild
                drop_database(admin, name)
            if callable(source):
                source, source_carry = source()
            try:
                info = _build(
                    admin,
                    server,
                    spec,
                    build,
                    run,
                    source,
                    source_carry,
                    project,
                    timeout,
                    tell,
                    detach,
                )
            except ClinicDBError as exc:
                raise TemplateBuildError(name, exc) from exc
            except psycopg.Error as exc:
                raise TemplateBuildError(name, exc) from exc
            info.rebuilt = bool(row)
            return info
        finally:
            admin.execute("SELECT pg_advisory_unlock(%s)", (build_lock_id(name),))


def _build(
    admin: psycopg.Connection[Any],
    server: ServerInfo,
    spec: TemplateSpec,
    build: BuildStep,
    run: RunRef | None,
    source: str | None,
    source_carry: dict[str, Any] | None,
    project: str | None,
    timeout: float = 0,
    tell: Callable[[str], None] | None = None,
    detach: bool = False,
) -> TemplateInfo:
    from psycopg import sql

    from .connect import connect
    from .databases import apply_carry, create_database, drop_database

    name = spec.name
    building = f"{PREFIX}build_{spec.key}"
    started = time.perf_counter()
    info = TemplateInfo(name, spec.key, spec.variant, server, built=True)
    drop_database(admin, building)  # leftover of a build that was killed
    session: BuildSession | None = None
    try:
        _import_steps_beside()  # while the server copies
        create_database(admin, building, source, server.major)
        write_marker(
            admin, building, Marker("building", key=spec.key, owner=run.to_dict() if run else None)
        )
        if source_carry:
            apply_carry(admin, building, source_carry)
        session = BuildSession(
            admin,
            server,
            building,
            timeout=timeout,
            tell=tell,
            what=f"building template {spec.key} ({spec.variant})",
            detach=detach,
        )
        try:
            try:
                build(session, info)
            except Exception as exc:
                real = session.failure(exc)
                if real is exc:
                    raise
                raise real from exc
            info.carry = read_carry(session.conn)
        finally:
            session.close()
        # A new session writes the relation cache file of the finished database; every
        # clone gets a copy, and its first connection does not build one of its own.
        if not _relcache_file_present(admin, server, building):
            connect(server.dsn_for(building), autocommit=True).close()
        if detach:
            info.beside, session.beside = session.beside, []
            for work in info.beside:
                work.start()
        else:
            session.join_beside(info)
        info.seconds = time.perf_counter() - started
        admin.execute(
            sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                sql.Identifier(building), sql.Identifier(name)
            )
        )
        admin.execute(
            sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false").format(
                sql.Identifier(name)
            )
        )
        info.built_at = now_iso()
        write_marker(admin, name, info.marker(spec, run, project))
    except BaseException:
        if session is not None:
            session.join_beside(info, cancel=True)
        drop_database(admin, building)
        drop_database(admin, name, only_if_not_template=True)
        raise
    return info


def _relcache_file_present(admin: psycopg.Connection[Any], server: ServerInfo, name: str) -> bool:
    """Whether database ``name`` has its relation cache file (only a local server's data
    directory tells; False when unknown).  The build's own session wrote it as it connected,
    and DDL on the project's tables leaves it valid; an ANALYZE of the catalogs removes it."""
    if server.data_dir is None:
        return False
    row = admin.execute("SELECT oid FROM pg_database WHERE datname = %s", (name,)).fetchone()
    try:
        return row is not None and (server.data_dir / "base" / str(row[0]) / _RELCACHE).is_file()
    except OSError:
        return False


_RELCACHE = "pg_internal.init"


def _import_steps_beside() -> None:
    """Import the build steps' modules in a thread, while the server copies the database the
    build starts from: a first build in a process does not wait for both one after the other."""
    import importlib
    import sys
    import threading

    names = [f"{__package__}.{m}" for m in ("migrations", "partitions", "seeds")]
    missing = [n for n in names if n not in sys.modules]
    if missing:
        threading.Thread(
            target=lambda: [importlib.import_module(n) for n in missing],
            name="clinicdb-import",
            daemon=True,
        ).start()


# --------------------------------------------------------------------------- carry-over

#: GUCs whose value is a list: each element is quoted on its own (as pg_dump does).
_LIST_SETTINGS = {
    "search_path",
    "temp_tablespaces",
    "session_preload_libraries",
    "local_preload_libraries",
    "shared_preload_libraries",
}


def read_carry(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    """The current database's own settings and grants: what ``TEMPLATE`` does not copy."""
    rows = conn.execute(
        "SELECT coalesce(r.rolname, ''), s.setconfig FROM pg_db_role_setting s "
        "LEFT JOIN pg_roles r ON r.oid = s.setrole "
        "WHERE s.setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database()) "
        "ORDER BY 1"
    ).fetchall()
    settings = [[str(role), [str(c) for c in config]] for role, config in rows]
    acl = conn.execute(
        "SELECT coalesce(g.rolname, 'PUBLIC'), a.privilege_type, a.is_grantable "
        "FROM pg_database d, aclexplode(d.datacl) a LEFT JOIN pg_roles g ON g.oid = a.grantee "
        "WHERE d.datname = current_database() AND d.datacl IS NOT NULL ORDER BY 1, 2"
    ).fetchall()
    carry: dict[str, Any] = {}
    if settings:
        carry["settings"] = settings
    if acl:
        carry["acl"] = [[str(g), str(p), bool(o)] for g, p, o in acl]
    return carry


def _split_list(value: str) -> list[str]:
    """``a, "b c"`` → ``['a', 'b c']``: a list setting's elements as PostgreSQL stores them."""
    items, current, quoted = [], "", False
    for ch in value:
        if ch == '"':
            quoted = not quoted
        elif ch == "," and not quoted:
            items.append(current.strip())
            current = ""
            continue
        current += ch
    if current.strip():
        items.append(current.strip())
    return [
        i[1:-1].replace('""', '"') if i.startswith('"') and i.endswith('"') else i for i in items
    ]


def carry_statements(dbname: str, carry: dict[str, Any]) -> list[Any]:
    """The statements that give database ``dbname`` the settings and grants in ``carry``."""
    from psycopg import sql

    statements: list[Any] = []
    db = sql.Identifier(dbname)
    for role, config in carry.get("settings", []):
        target = (
            sql.SQL("ALTER ROLE {} IN DATABASE {}").format(sql.Identifier(role), db)
            if role
            else sql.SQL("ALTER DATABASE {}").format(db)
        )
        for entry in config:
            key, _, value = entry.partition("=")
            values = _split_list(value) if key in _LIST_SETTINGS else [value]
            statements.append(
                sql.SQL("{} SET {} TO {}").format(
                    target,
                    sql.Identifier(key),
                    sql.SQL(", ").join(sql.Literal(v) for v in values),
                )
            )
    acl = carry.get("acl")
    if acl is not None:
        grantees = sorted({g for g, _, _ in acl} | {"PUBLIC"})
        for grantee in grantees:
            who = sql.SQL("PUBLIC") if grantee == "PUBLIC" else sql.Identifier(grantee)
            statements.append(sql.SQL("REVOKE ALL ON DATABASE {} FROM {}").format(db, who))
        for grantee, privilege, grantable in acl:
            who = sql.SQL("PUBLIC") if grantee == "PUBLIC" else sql.Identifier(grantee)
            statements.append(
                sql.SQL("GRANT {} ON DATABASE {} TO {}{}").format(
                    sql.SQL(privilege),
                    db,
                    who,
                    sql.SQL(" WITH GRANT OPTION" if grantable else ""),
                )
            )
    return statements


# --------------------------------------------------------------------------- the builder


class Builder:
    """Builds the templates of one project (the steps, in order, and their report)."""

    def __init__(
        self,
        project: Project,
        settings: Settings,
        run: RunRef | None,
        tell: Callable[[str], None] | None = None,
        *,
        detach: Callable[[TemplateInfo], None] | None = None,
    ) -> None:
        self.project = project
        self.settings = settings
        self.run = run
        #: where progress lines go (the terminal); None: nowhere
        self.tell = tell
        #: given, a build returns before the checkpoints made beside it are done, and hands
        #: its template to ``detach`` (the plugin: they are made while the tests run, and the
        #: run waits for them with ``TemplateInfo.finish_beside`` before it ends)
        self.detach = detach

    def options(self, variant: str) -> tuple[tuple[str, str], ...]:
        s = self.settings
        opts = [
            ("audit_tables", ",".join(s.audit_tables or ())),
            ("partition_function", s.partition_function or ""),
            ("schemas", ",".join(s.schemas or ())),
        ]
        if variant == "dev":
            opts += [
                ("dev_seed_mode", s.dev_seed_mode),
                ("environment", s.environment),
                ("dev_seed_tables", ",".join(s.dev_seed_tables or ())),
            ]
        return tuple(opts)

    def spec(self, major: int, variant: str = "base", base: str | None = None) -> TemplateSpec:
        p = self.project
        if variant == "dev":
            return TemplateSpec(
                major, "dev", seeds=[p.dev_seed()], options=self.options("dev"), base=base
            )
        seed = p.system_seed
        return TemplateSpec(
            major,
            "base",
            bootstrap=p.bootstrap,
            migrations=p.migrations,
            seeds=[seed] if seed else [],
            options=self.options("base"),
        )

    # ------------------------------------------------------------ checkpoints

    def find_checkpoint(self, server: ServerInfo) -> tuple[str, Marker] | None:
        """The checkpoint of the longest prefix of this chain the server holds and may resume.

        Usable only while the server's cluster-wide state (roles, role settings,
        tablespaces) is what it was when the checkpoint was taken: a later
        migration that created a role must not find it there already.
        """

        if self.settings.rebuild:
            return None  # --clinicdb-rebuild: from the start, whatever is kept
        from .connect import connect

        keys = self.project.prefix_keys(server.major)
        with connect(server.dsn, autocommit=True) as admin:
            found = {
                m.key: (name, m)
                for name, m in marked_databases(admin)
                if m is not None and m.kind == "checkpoint" and m.builder == BUILDER_VERSION
            }
            if not found:
                return None
            state = cluster_state(admin)
            for key in reversed(keys[1:]):
                hit = found.get(key)
                if hit is not None and hit[1].cluster_state == state:
                    write_marker(admin, hit[0], hit[1].with_user(self.run))
                    return hit
        return None

    # ------------------------------------------------------------ variants

    def base(self, server: ServerInfo) -> TemplateInfo:
        spec = self.spec(server.major)
        resume: list[tuple[str, Marker] | None] = []

        def source() -> tuple[str | None, dict[str, Any] | None]:
            # Looked for only when the template has to be built.
            resume.append(self.find_checkpoint(server))
            found = resume[0]
            return (found[0], found[1].carry) if found else (None, None)

        info = ensure_template(
            server,
            spec,
            build=lambda session, info: self._build_base(session, info, spec, resume[0]),
            detach=self.detach is not None,
            run=self.run,
            rebuild=self.settings.rebuild,
            source=source,
            project=self.project.id,
            timeout=self.settings.build_timeout,
            tell=self.tell,
        )
        info.renew = lambda: self.base(server)
        if info.beside and self.detach is not None:
            self.detach(info)
        return info

    def dev(self, base: TemplateInfo) -> TemplateInfo:
        server = base.server
        spec = self.spec(server.major, "dev", base=base.name)
        info = ensure_template(
            server,
            spec,
            build=lambda session, info: self._build_dev(session, info, base),
            run=self.run,
            rebuild=self.settings.rebuild,
            source=base.name,
            source_carry=base.carry,
            project=self.project.id,
            timeout=self.settings.build_timeout,
            tell=self.tell,
        )
        info.renew = lambda: self.dev(base)
        return info

    # ------------------------------------------------------------ steps

    def _build_base(
        self,
        session: BuildSession,
        info: TemplateInfo,
        spec: TemplateSpec,
        resume: tuple[str, Marker] | None,
    ) -> None:
        from .migrations import preflight_extensions
        from .seeds import run_bootstrap

        p = self.project
        t0 = time.perf_counter()
        versioned = [m for m in p.migrations if m.kind == "versioned"]
        done = resume[1].count if resume else 0
        info.resumed = done
        conn = session.conn
        taken = {id(m) for m in versioned[:done]}  # from the checkpoint
        preflight_extensions(
            conn,
            [m for m in p.migrations if id(m) not in taken],
            binaries_note=info.server.binaries,
            alternatives=_alternatives,
        )
        if not done:
            for path in p.bootstrap:
                session.begin(f"bootstrap {path.name}")
                t = time.perf_counter()
                info.notices.extend(run_bootstrap(conn, path))
                info.timings[f"bootstrap {path.name}"] = time.perf_counter() - t
        shared = [] if info.server.hermetic else cluster_wide_statements(p.bootstrap, p.migrations)
        if shared:
            info.notes.append(
                "the server is shared (not this project's own), and roles, role settings and "
                "tablespaces are cluster-wide: "
                + "; ".join(shared)
                + " — other databases on it see them, and a second build fails where a "
                "statement is not idempotent (use DO blocks that check pg_roles, or the "
                "embedded backend, which keeps one cluster per project)"
            )
        keys = self.project.prefix_keys(info.server.major)
        if resume is not None:  # passed too: a later chain (the next edit) resumes there again
            info.checkpoints[keys[done]] = str(resume[1].cluster_state)
        # Two checkpoints: after all but the newest versioned migration (an edit of the newest
        # resumes there) and after all of them (a new migration or a seed edit resumes there).
        stops = sorted({n for n in (len(versioned) - 1, len(versioned)) if n > done})
        split = 0.0
        position = {m.name: i for i, m in enumerate(p.migrations, start=1)}

        def step(m: Migration) -> None:
            session.begin(f"migration {m.name} ({position[m.name]}/{len(position)})")

        passes: list[int | None] = list(stops)
        whole = [None] if not (stops and stops[-1] == len(versioned) == len(p.migrations)) else []
        if resume is not None and stops and not touching_the_cluster(versioned[done:]):
            # Straight through to the last checkpoint's place.  Then, if that was quick, a
            # thread makes the checkpoints beside the build by doing the same again; if not,
            # doing it again would cost more than the build copying itself there.
            began = time.perf_counter()
            last = stops[-1]
            split += self._apply(session, info, versioned[:last], shared=bool(shared), step=step)
            if time.perf_counter() - began <= BESIDE_MAX_SECONDS:
                work = CheckpointsBeside(
                    info.server, resume, versioned, stops, keys, self.project.id, self.run
                )
                session.beside.append(work)
                if not session.detach:
                    work.start()  # else once the template is done: not competing with it
            else:
                self._checkpoint(session, info, last, keys[last])
            passes = []
        for stop in passes + whole:
            chain = list(p.migrations) if stop is None else versioned[:stop]
            split += self._apply(session, info, chain, shared=bool(shared), step=step)
            if stop is not None and stop > 0:
                self._checkpoint(session, info, stop, keys[stop])
        info.timings["reading and splitting the migrations"] = split
        info.timings["migrations"] = time.perf_counter() - t0
        self._partitions_and_seed(session, info, spec)

    def _apply(
        self,
        session: BuildSession,
        info: TemplateInfo,
        chain: Sequence[Migration],
        *,
        shared: bool,
        step: Callable[[Migration], None],
    ) -> float:
        """Apply what of ``chain`` is pending; the seconds spent reading and splitting files."""
        from .migrations import apply_migrations
        from .seeds import capture_notices

        with capture_notices(session.conn, "migrations") as notices:
            try:
                report = apply_migrations(session.conn, chain, progress=step)
            except SQLFileError as exc:
                if shared and exc.sqlstate == "42710":
                    exc.hint = (
                        "this server is shared and the object is cluster-wide: an earlier "
                        "build (or another project) created it. Make the statement "
                        "idempotent (a DO block that checks pg_roles first), or use the "
                        "embedded backend"
                    )
                raise
        info.notices.extend(notices)
        info.notes += [str(n) for n in report.notes]
        info.timings.update({f"migration {k}": v for k, v in report.timings.items()})
        return report.split_seconds

    def _checkpoint(self, session: BuildSession, info: TemplateInfo, stop: int, key: str) -> None:
        """Copy the database as it is after ``stop`` versioned migrations into a checkpoint."""
        t = time.perf_counter()
        marker = Marker(
            "checkpoint",
            key=key,
            count=stop,
            builder=BUILDER_VERSION,
            project=self.project.id,
            built_at=now_iso(),
            cluster_state=cluster_state(session.conn),
        )
        if session.snapshot(f"{PREFIX}ckpt_{key}", marker):
            info.timings[f"checkpoint after {stop} migrations"] = time.perf_counter() - t
        info.checkpoints[key] = str(marker.cluster_state)

    def _partitions_and_seed(
        self, session: BuildSession, info: TemplateInfo, spec: TemplateSpec
    ) -> None:
        from .partitions import ensure_window
        from .seeds import load_seed

        p = self.project
        conn = session.conn
        t1 = time.perf_counter()
        session.begin("audit partitions")
        info.partitions = ensure_window(
            conn,
            tables=self.settings.audit_tables,
            function=self.settings.partition_function,
            start=spec.partition_start,
            end=spec.partition_end,
        ).to_dict()
        info.timings["audit partitions"] = time.perf_counter() - t1
        if p.system_seed is not None:
            t2 = time.perf_counter()
            session.begin(f"seed {p.system_seed.name}")
            info.notices.extend(load_seed(conn, p.system_seed))
            info.timings[f"seed {p.system_seed.name}"] = time.perf_counter() - t2

    def _build_dev(self, session: BuildSession, info: TemplateInfo, base: TemplateInfo) -> None:
        from .seeds import load_dev_seed

        conn = session.conn
        s = self.settings
        seed = self.project.dev_seed()
        t0 = time.perf_counter()
        session.begin(f"dev seed {seed.name}")
        report = load_dev_seed(
            conn,
            seed,
            environment=s.environment,
            mode=s.dev_seed_mode,
            schemas=s.schemas,
            tables=s.dev_seed_tables,
            audit_tables=s.audit_tables,
            external=info.server.backend == "external",
            allow_external=s.allow_external_dev_seed,
        )
        info.partitions = base.partitions
        info.notices.extend(report.notices)
        info.dev_seed = report.to_dict()
        info.timings[f"dev seed {seed.name}"] = time.perf_counter() - t0


_CLUSTER_WIDE = re.compile(
    r"^\s*(CREATE\s+(ROLE|USER|GROUP|TABLESPACE)|ALTER\s+(ROLE|USER|GROUP)\s+\S+\s+(SET|RESET)"
    r"|DROP\s+(ROLE|USER|GROUP|TABLESPACE)|ALTER\s+SYSTEM)\b",
    re.IGNORECASE,
)


#: Anything in a statement, DO blocks included, that reaches beyond its database: two builds
#: running it at once (a build and its checkpoint beside it) could collide there.
_TOUCHES_CLUSTER = re.compile(
    r"\b(CREATE|ALTER|DROP)\s+(ROLE|USER|GROUP|TABLESPACE|DATABASE|SUBSCRIPTION)\b"
    r"|\bALTER\s+SYSTEM\b|\b(COMMENT|SECURITY\s+LABEL)\s+ON\s+(ROLE|TABLESPACE|DATABASE)\b"
    r"|\bGRANT\b(?:(?!\bON\b)[^;])*\bTO\b|\bREVOKE\b(?:(?!\bON\b)[^;])*\bFROM\b"
    r"|\bdblink|\bpg_(?:advisory|terminate_backend|cancel_backend|reload_conf)",
    re.IGNORECASE,
)


def touching_the_cluster(migrations: Sequence[Migration]) -> list[str]:
    """``file line N`` for each statement that may reach beyond its database (roles, role
    memberships, tablespaces, databases, system settings …), also inside a DO block."""
    return [
        f"{m.file.path.name} line {stmt.line}"
        for m in migrations
        for stmt in m.file.statements
        if _TOUCHES_CLUSTER.search(stmt.text)
    ]


def cluster_wide_statements(
    bootstrap: Sequence[Path], migrations: Sequence[Migration]
) -> list[str]:
    """``file line N: CREATE ROLE …`` for each statement whose effect is cluster-wide."""
    from .sqlfile import read_sql_file

    files = [read_sql_file(p, what="bootstrap file") for p in bootstrap]
    files += [m.file for m in migrations]
    found = []
    for f in files:
        for stmt in f.statements:
            if _CLUSTER_WIDE.match(stmt.text):
                words = " ".join(stmt.text.split()[:3])
                found.append(f"{f.path.name} line {stmt.line}: {words}")
    return found


def cluster_state(conn: psycopg.Connection[Any]) -> str:
    """A fingerprint of what is cluster-wide: roles, memberships, role settings, tablespaces."""
    row = conn.execute(
        "SELECT md5(coalesce(string_agg(x, '|' ORDER BY x), '')) FROM ("
        " SELECT 'role ' || rolname || ' ' || rolsuper::text || rolinherit::text"
        "   || rolcreaterole::text || rolcreatedb::text || rolcanlogin::text"
        "   || rolreplication::text || rolbypassrls::text || rolconnlimit::text"
        "   || coalesce(array_to_string(rolconfig, ','), '') FROM pg_roles"
        " UNION ALL SELECT 'member ' || r.rolname || ' ' || m.rolname FROM pg_auth_members a"
        "   JOIN pg_roles r ON r.oid = a.roleid JOIN pg_roles m ON m.oid = a.member"
        " UNION ALL SELECT 'setting ' || coalesce(r.rolname, '*') || ' '"
        "   || array_to_string(s.setconfig, ',') FROM pg_db_role_setting s"
        "   LEFT JOIN pg_roles r ON r.oid = s.setrole WHERE s.setdatabase = 0"
        " UNION ALL SELECT 'tablespace ' || spcname FROM pg_tablespace"
        ") t(x)"
    ).fetchone()
    return str(row[0]) if row else ""


def _alternatives(missing: list[str]) -> list[str]:
    """Installed builds that ship every extension in ``missing``."""
    from .binaries import installed

    return [b.describe() for b in installed() if all(b.has_extension(e) for e in missing)]
