"""Template databases: content key, build once under a lock, clone, drop (no pytest import).

The template holds the migrated, seeded database.  It is built once per *key*
— a hash of the PostgreSQL major version, every migration's name and bytes,
the seeds' names and bytes, the bootstrap settings (including the audit
partition window, which follows the calendar month) and the builder version —
under an advisory lock taken in the maintenance database, so xdist workers and
concurrent pytest runs on one server build it exactly once.  It is built under
a temporary name and renamed when complete: a ``clinicdb_tpl_*`` database is
never half-built.  Then it is marked ``IS_TEMPLATE`` with connections
disallowed, and every test database is a clone of it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from .migrations import Migration, apply_migrations, preflight_extensions
from .runs import RunRef
from .seeds import Notice, capture_notices, load_seed
from .server import ServerInfo

#: Bump when the way templates are built changes: old templates become stale.
BUILDER_VERSION = "1"
PREFIX = "clinicdb_"
MARKER = "pytest-clinicdb"
PARTITION_FUNCTION = "audit.ensure_monthly_partitions(timestamptz,timestamptz)"
#: Test set-up covers the current month and this many following ones.
PARTITION_MONTHS_AHEAD = 3


def current_month(now: dt.datetime | None = None) -> dt.date:
    now = now or dt.datetime.now(dt.timezone.utc)
    return dt.date(now.year, now.month, 1)


def add_months(day: dt.date, months: int) -> dt.date:
    total = day.year * 12 + day.month - 1 + months
    return dt.date(total // 12, total % 12 + 1, 1)


@dataclass(frozen=True)
class TemplateSpec:
    """Everything a template is built from; its :attr:`key` names the template."""

    major: int
    migrations: Sequence[Migration]
    seeds: Sequence[Path]
    partition_start: dt.date
    partition_months: int = PARTITION_MONTHS_AHEAD + 1
    variant: str = "base"

    @property
    def partition_end(self) -> dt.date:
        return add_months(self.partition_start, self.partition_months)

    @property
    def key(self) -> str:
        h = hashlib.sha256()
        h.update(
            f"builder={BUILDER_VERSION}\0major={self.major}\0variant={self.variant}\0".encode()
        )
        h.update(
            f"partitions={self.partition_start.isoformat()}+{self.partition_months}\0".encode()
        )
        for mig in self.migrations:
            h.update(b"migration\0" + mig.name.encode() + b"\0" + mig.file.data + b"\0")
        for seed in self.seeds:
            h.update(b"seed\0" + seed.name.encode() + b"\0" + seed.read_bytes() + b"\0")
        return h.hexdigest()[:16]

    @property
    def name(self) -> str:
        return f"{PREFIX}tpl_{self.key}"


@dataclass
class TemplateInfo:
    """A built template and how it came to be."""

    name: str
    key: str
    built: bool  # False: it already existed (reused)
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    notices: list[Notice] = field(default_factory=list)
    partitions: str = ""
    dev_seed: str = ""
    built_at: str = ""
    rebuilt: bool = False  # --clinicdb-rebuild replaced an earlier run's template


def marker(kind: str, **extra: object) -> str:
    return f"{MARKER} " + json.dumps({"kind": kind, **extra}, sort_keys=True)


def parse_marker(comment: object) -> dict[str, object] | None:
    """The JSON marker of a database comment, or None if the plugin did not write it."""
    if not comment or not str(comment).startswith(MARKER + " "):
        return None
    try:
        data = json.loads(str(comment)[len(MARKER) + 1 :])
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def read_marker(conn: psycopg.Connection[Any], dbname: str) -> dict[str, object] | None:
    row = conn.execute(
        "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
        (dbname,),
    ).fetchone()
    return parse_marker(row[0]) if row else None


def set_marker(conn: psycopg.Connection[Any], dbname: str, kind: str, **extra: object) -> None:
    conn.execute(
        sql.SQL("COMMENT ON DATABASE {} IS {}").format(
            sql.Identifier(dbname), sql.Literal(marker(kind, **extra))
        )
    )


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _lock_id(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def ensure_template(
    server: ServerInfo,
    spec: TemplateSpec,
    *,
    build: Callable[[psycopg.Connection[Any], TemplateInfo], None],
    run: RunRef | None = None,
    rebuild: bool = False,
    timeout: float = 600.0,
) -> TemplateInfo:
    """Return the template for ``spec``, building it with ``build(conn, info)`` if needed.

    ``run`` is recorded in the template's marker as a user (garbage collection
    never drops a template a live run uses).  ``rebuild`` drops a template that
    an earlier run built and builds it again — once per run, however many
    processes ask.
    """
    name = spec.name
    with psycopg.connect(server.dsn, autocommit=True) as admin:
        admin.execute("SELECT set_config('lock_timeout', %s, false)", (f"{int(timeout * 1000)}",))
        admin.execute("SELECT pg_advisory_lock(%s)", (_lock_id("template:" + name),))
        try:
            row = admin.execute(
                "SELECT datistemplate FROM pg_database WHERE datname = %s", (name,)
            ).fetchone()
            data = read_marker(admin, name) if row else None
            built_by = RunRef.from_dict((data or {}).get("built_by"))
            this_run = run is not None and built_by is not None and built_by.id == run.id
            if row and row[0] and data is not None and (this_run or not rebuild):
                users = _users_with(data, run)
                fields = {k: v for k, v in data.items() if k != "kind"}
                set_marker(
                    admin, name, "template", **{**fields, "users": users, "last_used": _now()}
                )
                notices = [Notice(**n) for n in data.get("notices", [])]  # type: ignore[attr-defined]
                return TemplateInfo(
                    name,
                    spec.key,
                    built=False,
                    notices=notices,
                    timings=dict(data.get("timings", {})),  # type: ignore[call-overload]
                    partitions=str(data.get("partitions", "")),
                    dev_seed=str(data.get("dev_seed", "")),
                    built_at=str(data.get("built_at", "")),
                    seconds=float(data.get("seconds", 0.0)),  # type: ignore[arg-type]
                    rebuilt=this_run,
                )
            if row:  # never completed (a crash between rename and marking), or a rebuild
                drop_database(admin, name)
            info = _build(admin, server, spec, build, run)
            info.rebuilt = bool(row)
            return info
        finally:
            admin.execute("SELECT pg_advisory_unlock(%s)", (_lock_id("template:" + name),))


def _users_with(data: dict[str, object], run: RunRef | None) -> list[dict[str, object]]:
    """The template's live users plus ``run`` (dead runs are pruned as we go)."""
    users = []
    for entry in data.get("users", []) or []:  # type: ignore[attr-defined]
        ref = RunRef.from_dict(entry)
        if ref is not None and ref.alive() and (run is None or ref.id != run.id):
            users.append(ref.to_dict())
    if run is not None:
        users.append(run.to_dict())
    return users


def _build(
    admin: psycopg.Connection[Any],
    server: ServerInfo,
    spec: TemplateSpec,
    build: Callable[[psycopg.Connection[Any], TemplateInfo], None],
    run: RunRef | None,
) -> TemplateInfo:
    name = spec.name
    building = f"{PREFIX}build_{spec.key}"
    started = time.perf_counter()
    info = TemplateInfo(name, spec.key, built=True)
    drop_database(admin, building)  # leftover of a build that was killed
    admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(building)))
    try:
        set_marker(admin, building, "building", key=spec.key)
        with psycopg.connect(server.dsn_for(building), autocommit=True) as conn:
            build(conn, info)
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
        info.built_at = _now()
        set_marker(
            admin,
            name,
            "template",
            key=spec.key,
            variant=spec.variant,
            builder=BUILDER_VERSION,
            partition_start=spec.partition_start.isoformat(),
            built_at=info.built_at,
            built_by=run.to_dict() if run else None,
            users=[run.to_dict()] if run else [],
            last_used=info.built_at,
            seconds=round(info.seconds, 4),
            timings={k: round(v, 4) for k, v in info.timings.items()},
            notices=[n.to_dict() for n in info.notices],
            partitions=info.partitions,
            dev_seed=info.dev_seed,
        )
    except BaseException:
        drop_database(admin, building)
        drop_database(admin, name, only_if_not_template=True)
        raise
    return info


def standard_build(
    migrations: Sequence[Migration],
    system_seed: Path | None,
    spec: TemplateSpec,
    *,
    binaries_note: str = "",
    alternatives: Callable[[list[str]], list[str]] | None = None,
    progress: Callable[[str], None] | None = None,
) -> Callable[[psycopg.Connection[Any], TemplateInfo], None]:
    """The clinic build: pre-flight → migrations → audit partitions → seed 001."""

    def build(conn: psycopg.Connection[Any], info: TemplateInfo) -> None:
        t0 = time.perf_counter()
        preflight_extensions(
            conn, migrations, binaries_note=binaries_note, alternatives=alternatives
        )
        with capture_notices(conn, "migrations") as notices:
            report = apply_migrations(
                conn,
                list(migrations),
                progress=(lambda m: progress(f"migration {m.name}")) if progress else None,
            )
        info.notices.extend(notices)
        info.timings.update({f"migration {k}": v for k, v in report.timings.items()})
        info.timings["migrations"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        info.partitions = ensure_partitions(conn, spec.partition_start, spec.partition_end)
        info.timings["audit partitions"] = time.perf_counter() - t1
        if system_seed is not None:
            t2 = time.perf_counter()
            info.notices.extend(load_seed(conn, system_seed))
            info.timings[f"seed {system_seed.name}"] = time.perf_counter() - t2

    return build


def ensure_partitions(conn: psycopg.Connection[Any], start: dt.date, end: dt.date) -> str:
    """Call the audit maintenance function for [start, end) if the schema has one.

    Test-only: production relies on its scheduled maintenance job.  Returns a
    description for the report header.
    """
    row = conn.execute("SELECT to_regprocedure(%s) IS NOT NULL", (PARTITION_FUNCTION,)).fetchone()
    if not row or not row[0]:
        return "no audit partition function"
    with conn.transaction():
        conn.execute("SET LOCAL TimeZone = 'UTC'")
        created = conn.execute(
            "SELECT audit.ensure_monthly_partitions(%s::timestamptz, %s::timestamptz)",
            (f"{start.isoformat()} 00:00:00+00", f"{end.isoformat()} 00:00:00+00"),
        ).fetchone()
    last = add_months(end, -1)
    count = created[0] if created else 0
    return f"{start:%Y-%m}..{last:%Y-%m} ensured (test-only, {count} created)"


def clone(
    admin: psycopg.Connection[Any], template: str, name: str, major: int, **mark: object
) -> None:
    """Create ``name`` from ``template`` (FILE_COPY where available: fastest with fsync off)."""
    strategy = sql.SQL(" STRATEGY FILE_COPY") if major >= 15 else sql.SQL("")
    admin.execute(
        sql.SQL("CREATE DATABASE {} TEMPLATE {}{}").format(
            sql.Identifier(name), sql.Identifier(template), strategy
        )
    )
    set_marker(admin, name, "clone", template=template, **mark)


def drop_database(
    admin: psycopg.Connection[Any],
    name: str,
    *,
    only_if_not_template: bool = False,
    wait: float = 5.0,
) -> bool:
    """Drop a database of ours (name prefix checked); True if it existed.

    Waits for the backends of closed connections to leave first: ``DROP
    DATABASE`` would otherwise sleep 100 ms for them.
    """
    if not name.startswith(PREFIX):
        raise ValueError(f"refusing to drop {name!r}: not a pytest-clinicdb database")
    row = admin.execute(
        "SELECT datistemplate FROM pg_database WHERE datname = %s", (name,)
    ).fetchone()
    if not row:
        return False
    if only_if_not_template and row[0]:
        return False
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        busy = admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (name,)
        ).fetchone()
        if not busy or not busy[0]:
            break
        time.sleep(0.002)
    if row[0]:
        admin.execute(
            sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE false").format(sql.Identifier(name))
        )
    admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    return True


#: Templates kept per server by default (the newest used); older ones are dropped.
KEEP_TEMPLATES = 5


def collect_garbage(
    admin: psycopg.Connection[Any],
    run: RunRef,
    *,
    keep_templates: int = KEEP_TEMPLATES,
    month: dt.date | None = None,
    unmarked: Sequence[str] = (),
) -> list[tuple[str, str]]:
    """Drop what dead runs and old builds left on the server; return ``(name, reason)`` pairs.

    Only databases whose name starts with ``clinicdb_`` *and* whose comment
    holds the plugin's marker are considered; anything else is never touched.

    - clones (and databases kept by ``--clinicdb-keep-failed``) of runs that are
      no longer alive;
    - unfinished builds nobody is building (the build lock is free);
    - templates built by another builder version or for a past month's audit
      partition window, unless a live run uses them;
    - beyond the newest ``keep_templates`` templates (by last use), those no
      live run uses;
    - the databases named in ``unmarked``: names a dead run journaled just before
      creating them, which it may not have lived to mark (a kill between
      ``CREATE DATABASE`` and ``COMMENT``).  Only if they carry no marker of a
      live run.

    A database this role may not drop (another role owns it) is left alone and
    listed with the reason it was not dropped.
    """
    month = month or current_month()
    dropped: list[tuple[str, str]] = []

    def drop(name: str, why: str, *, lock: str | None = None) -> None:
        """Drop ``name`` and record ``why``; with ``lock`` (a template's name), only while
        nobody holds that template's build lock."""
        lock_id = _lock_id("template:" + lock) if lock else None
        if lock_id is not None:
            row = admin.execute("SELECT pg_try_advisory_lock(%s)", (lock_id,)).fetchone()
            if not row or not row[0]:
                return
        try:
            if drop_database(admin, name):
                dropped.append((name, why))
        except psycopg.errors.InsufficientPrivilege as exc:
            dropped.append((name, f"{why} — NOT dropped: {str(exc).strip()}"))
        finally:
            if lock_id is not None:
                admin.execute("SELECT pg_advisory_unlock(%s)", (lock_id,))

    rows = admin.execute(
        "SELECT datname, shobj_description(oid, 'pg_database') FROM pg_database "
        "WHERE datname LIKE %s ORDER BY datname",
        (PREFIX.replace("_", "\\_") + "%",),
    ).fetchall()
    templates: list[tuple[str, dict[str, object]]] = []
    journaled = set(unmarked)
    for name, comment in rows:
        data = parse_marker(comment)
        if data is None:
            if name in journaled:
                drop(name, "created by a run that ended before marking it")
            continue
        kind = data.get("kind")
        if kind in ("clone", "kept"):
            owner = RunRef.from_dict(data.get("owner"))
            if owner is not None and owner.id != run.id and not owner.alive():
                drop(name, f"{kind} database of run {owner.id}, which has ended")
        elif kind == "building":
            drop(name, "unfinished template build", lock=f"{PREFIX}tpl_{data.get('key')}")
        elif kind == "template":
            templates.append((name, data))
    fresh: list[tuple[str, str, bool]] = []
    for name, data in templates:
        in_use = any(
            ref is not None and (ref.id == run.id or ref.alive())
            for ref in map(RunRef.from_dict, data.get("users", []) or [])  # type: ignore[call-overload]
        )
        if data.get("builder") != BUILDER_VERSION:
            stale = f"built by builder version {data.get('builder')}"
        elif str(data.get("partition_start", "")) < month.isoformat():
            stale = "its audit partition window starts in a past month"
        else:
            fresh.append((str(data.get("last_used") or data.get("built_at") or ""), name, in_use))
            continue
        if not in_use:
            drop(name, f"stale template: {stale}", lock=name)
    fresh.sort(reverse=True)
    for _used, name, in_use in fresh[max(keep_templates, 0) :]:
        if not in_use:
            drop(name, f"beyond the {keep_templates} most recently used templates", lock=name)
    return dropped
