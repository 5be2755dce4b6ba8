"""The marker the plugin writes into the comment of every database it creates (no pytest import).

``COMMENT ON DATABASE x IS 'pytest-clinicdb {json}'``.  Garbage collection only
ever drops a database whose name starts with ``clinicdb_`` *and* whose comment
holds this marker, so a database someone made by hand is never touched.  The
comment is the one place that travels with the database: it is how a later run
(or another host) learns who made it, whether that run is alive, and — for a
template — what went into it.

Kinds: ``building`` (a template under construction), ``template``,
``checkpoint`` (the migrations-only state a later build resumes from),
``clone`` (a test database), ``kept`` (a failed test's database kept by
``--clinicdb-keep-failed``) and ``up`` (``clinicdb up``'s database).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from .runs import RunRef

PREFIX = "clinicdb_"
TAG = "pytest-clinicdb"
#: Bump when the way templates are built changes: old templates become stale.
#: (Database names: ``clinicdb_tpl_``, ``clinicdb_ckpt_``, ``clinicdb_build_`` and the clones'
#: ``clinicdb_<w|wd|f|fd>_<run>_<worker>_<n>``, see databases.py and gc.py.)
BUILDER_VERSION = "2"


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


@dataclass
class Marker:
    """Everything the plugin records about one of its databases."""

    kind: str
    # clones, kept databases, builds: the run that made it
    owner: dict[str, Any] | None = None
    worker: str | None = None
    template: str | None = None
    test: str | None = None
    # templates and checkpoints
    key: str | None = None
    variant: str | None = None
    builder: str | None = None
    project: str | None = None
    partition_start: str | None = None
    built_at: str | None = None
    built_by: dict[str, Any] | None = None
    users: list[dict[str, Any]] = field(default_factory=list)
    last_used: str | None = None
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    notices: list[dict[str, str]] = field(default_factory=list)
    partitions: dict[str, Any] = field(default_factory=dict)
    dev_seed: dict[str, Any] = field(default_factory=dict)
    #: database-level settings and grants the clones must get again (not copied by TEMPLATE)
    carry: dict[str, Any] = field(default_factory=dict)
    #: checkpoints: how many versioned migrations, and the cluster-wide state they saw
    count: int = 0
    cluster_state: str | None = None

    # ------------------------------------------------------------ (de)serialising

    def to_comment(self) -> str:
        data = {k: v for k, v in asdict(self).items() if v not in (None, [], {}, 0, 0.0)}
        data["kind"] = self.kind
        return f"{TAG} " + json.dumps(data, sort_keys=True)

    @classmethod
    def from_comment(cls, comment: object) -> Marker | None:
        """The marker in a database comment, or None if the plugin did not write it."""
        if not comment or not str(comment).startswith(TAG + " "):
            return None
        try:
            data = json.loads(str(comment)[len(TAG) + 1 :])
        except ValueError:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("kind"), str):
            return None
        known = {f.name for f in fields(cls)}
        try:
            return cls(**{k: v for k, v in data.items() if k in known})
        except TypeError:
            return None

    # ------------------------------------------------------------ runs

    @property
    def owner_ref(self) -> RunRef | None:
        return RunRef.from_dict(self.owner)

    @property
    def built_by_ref(self) -> RunRef | None:
        return RunRef.from_dict(self.built_by)

    def user_refs(self) -> list[RunRef]:
        return [r for r in map(RunRef.from_dict, self.users) if r is not None]

    def in_use(self, run: RunRef | None = None) -> bool:
        """Whether a live run (or ``run``) uses this template."""
        return any((run is not None and r.id == run.id) or r.alive() for r in self.user_refs())

    def with_user(self, run: RunRef | None) -> Marker:
        """This marker with ``run`` among its users (dead runs pruned) and last use now."""
        users = [r.to_dict() for r in self.user_refs() if r.alive() and (not run or r.id != run.id)]
        if run is not None:
            users.append(run.to_dict())
        self.users = users
        self.last_used = now_iso()
        return self


def read_marker(conn: Any, dbname: str) -> Marker | None:
    row = conn.execute(
        "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
        (dbname,),
    ).fetchone()
    return Marker.from_comment(row[0]) if row else None


def write_marker(conn: Any, dbname: str, marker: Marker) -> None:
    from psycopg import sql

    conn.execute(
        sql.SQL("COMMENT ON DATABASE {} IS {}").format(
            sql.Identifier(dbname), sql.Literal(marker.to_comment())
        )
    )


def marked_databases(conn: Any) -> list[tuple[str, Marker | None]]:
    """Every ``clinicdb_*`` database of the server with its marker (None: not ours)."""
    rows = conn.execute(
        "SELECT datname, shobj_description(oid, 'pg_database') FROM pg_database "
        "WHERE datname LIKE %s ORDER BY datname",
        (PREFIX.replace("_", "\\_") + "%",),
    ).fetchall()
    return [(str(name), Marker.from_comment(comment)) for name, comment in rows]
