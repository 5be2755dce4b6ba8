"""Garbage collection: what dead runs and old builds left behind (no pytest import).

Three kinds of leftovers, each collected by the next run that comes along:

- **run directories** of runs whose owning process is gone (``kill -9``, an OOM
  kill, a CI timeout): what they started is released through the backend that
  recorded it (:func:`reap_dead_runs`), and the database names they journaled
  are handed to the database collection;
- **databases** on a server (:func:`collect_garbage`): only ``clinicdb_*``
  names that carry the plugin's marker — or that a killed run journaled just
  before creating them — are ever considered, and never one a live run uses;
- **kept clusters** of a project beyond its cap (:func:`prune_project_clusters`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .marker import BUILDER_VERSION, PREFIX, Marker, marked_databases
from .runs import (
    RUN_DIR_PREFIX,
    journaled,
    reaping,
    remove_run_dir,
    run_dir_owner_alive,
    run_dirs,
    servers_of,
)

if TYPE_CHECKING:
    import psycopg

    from .runs import RunRef
    from .server.cluster import ClusterDir

#: Templates kept per project and server by default (the newest used); older ones are dropped.
KEEP_TEMPLATES = 5


# --------------------------------------------------------------------------- liveness


def _run_lock(run_id: str) -> int:
    digest = hashlib.sha256(f"pytest-clinicdb run {run_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def hold_run_lock(conn: psycopg.Connection[Any], run_id: str) -> None:
    """Hold the run's liveness lock on ``conn`` (a shared advisory lock, for the connection's life).

    Every process of a run that uses a server holds it on its connection to the
    maintenance database.  The server drops it the moment the process dies,
    whatever the host: that is how another run, anywhere, tells a live run's
    databases from a dead one's.
    """
    conn.execute("SELECT pg_advisory_lock_shared(%s)", (_run_lock(run_id),))


#: ``clinicdb_<kind>_<run id>_<worker>_<n>``: the names Databases gives, journaled before use.
_CLONE_NAME = re.compile(r"^clinicdb_(?:w|wd|f|fd)_([0-9a-f]{8})_[A-Za-z0-9]+_[0-9]+$")


def run_lock_held(admin: psycopg.Connection[Any], run_id: str) -> bool:
    """Whether any process of run ``run_id`` holds its liveness lock on this server."""
    key = _run_lock(run_id)
    row = admin.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
    if row and row[0]:
        admin.execute("SELECT pg_advisory_unlock(%s)", (key,))
        return False
    return True


def run_alive(admin: psycopg.Connection[Any], ref: RunRef) -> bool:
    """Whether the run ``ref`` is alive: its process (this host), else its lock on the server."""
    if ref.local:
        return ref.alive()
    return run_lock_held(admin, ref.id)


def reap_dead_runs(cache_dir: Path, *, keep: str) -> list[str]:
    """Release what dead runs started and delete their directories.

    Returns the database names those runs journaled, for :func:`collect_garbage`.
    """
    from .server import backend_class

    found: list[str] = []
    for run_dir in run_dirs(cache_dir):
        if run_dir.name == f"{RUN_DIR_PREFIX}{keep}" or run_dir_owner_alive(run_dir):
            continue
        with reaping(run_dir) as mine:
            if not mine:
                continue  # another process of this run (or a `clinicdb gc`) reaps it
            found += journaled(run_dir)
            for record in servers_of(run_dir):
                try:
                    backend_class(record.backend).reap(
                        record.state, run_dir.name[len(RUN_DIR_PREFIX) :]
                    )
                except KeyError:
                    continue  # a backend registered by that run's conftest, not loaded here
            remove_run_dir(run_dir)
    return found


#: Kept clusters of all projects together, at most (the least recently used idle ones go).
KEEP_CLUSTERS = 12


def prune_clusters(
    cache_dir: Path, project: str, *, keep: int, skip: Path, keep_all: int = KEEP_CLUSTERS
) -> list[tuple[Path, str]]:
    """Delete idle kept clusters that are no longer worth their space; return (path, why).

    - a cluster whose project folders are all gone (a deleted checkout, a temporary copy);
    - a cluster of an earlier layout of the cache (no ``cluster.json``);
    - beyond the ``keep`` most recently used clusters of ``project`` (its earlier chains);
    - beyond the ``keep_all`` most recently used clusters of the whole cache.

    A cluster a live run uses is never deleted.
    """
    from .server.cluster import clusters

    def used(c: ClusterDir) -> float:
        return float(c.meta().get("last_used") or 0)

    others = sorted((c for c in clusters(cache_dir) if c.root != skip), key=used, reverse=True)
    doomed: dict[Path, str] = {}
    for c in others:
        meta = c.meta()
        paths = [Path(p) for p in meta.get("project_paths", [])]
        if not meta:
            doomed[c.root] = "made by an earlier version of the plugin"
        elif paths and not any(p.exists() for p in paths):
            doomed[c.root] = "its project's folders are gone"
    mine = [c for c in others if c.meta().get("project") == project and c.root not in doomed]
    for c in mine[max(keep - 1, 0) :]:
        doomed[c.root] = "an earlier migration chain of this project"
    rest = [c for c in others if c.root not in doomed]
    for c in rest[max(keep_all - 1, 0) :]:
        doomed[c.root] = f"beyond the {keep_all} most recently used clusters of the cache"
    deleted = []
    for c in others:
        if c.root in doomed and c.stop_if_idle(delete=True) == "deleted":
            deleted.append((c.root, doomed[c.root]))
    return deleted


def collect_garbage(
    admin: psycopg.Connection[Any],
    run: RunRef,
    *,
    keep_templates: int = KEEP_TEMPLATES,
    month: dt.date | None = None,
    unmarked: Sequence[str] = (),
    project: str | None = None,
) -> list[tuple[str, str]]:
    """Drop what dead runs and old builds left on the server; return ``(name, reason)`` pairs.

    - clones (and databases kept by ``--clinicdb-keep-failed``) of runs that are
      no longer alive;
    - unfinished builds nobody is building (the build lock is free);
    - templates built by another builder version or for a past month's audit
      partition window, unless a live run uses them;
    - beyond the newest ``keep_templates`` templates of ``project`` (by last
      use), those no live run uses — another project's templates never count.

    A database the connected role may not drop (another owner on a shared
    server) is left alone and listed with the reason it was not dropped.
    """
    import psycopg

    from .databases import drop_database
    from .templates import build_lock_id, current_month

    month = month or current_month()
    dropped: list[tuple[str, str]] = []

    def drop(name: str, why: str, *, lock: str | None = None) -> None:
        """Drop ``name`` and record ``why``; with ``lock`` (a template's name), only while
        nobody holds that template's build lock."""
        lock_id = build_lock_id(lock) if lock else None
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

    live: dict[str, bool] = {}

    def alive(ref: RunRef | None) -> bool:
        if ref is None or ref.id == run.id:
            return True
        if ref.id not in live:
            live[ref.id] = run_alive(admin, ref)
        return live[ref.id]

    def in_use(marker: Marker) -> bool:
        return any(alive(r) for r in marker.user_refs())

    journal = set(unmarked)
    templates = []
    for name, marker in marked_databases(admin):
        if marker is None:
            # Created, then killed before the comment was written: the local journal names it,
            # or (another host's run) its name does and the server says the run is gone.
            named = _CLONE_NAME.match(name)
            if name in journal or (
                named and named.group(1) != run.id and not run_lock_held(admin, named.group(1))
            ):
                drop(name, "created by a run that ended before marking it")
            continue
        if marker.kind in ("clone", "kept"):
            owner = marker.owner_ref
            if owner is not None and not alive(owner):
                where = "" if owner.local else f" on {owner.host}"
                drop(name, f"{marker.kind} database of run {owner.id}{where}, which has ended")
        elif marker.kind == "building":
            owner = marker.owner_ref
            if owner is None or owner.id != run.id:
                drop(name, "unfinished template build", lock=f"{PREFIX}tpl_{marker.key}")
        elif marker.kind in ("template", "checkpoint"):
            templates.append((name, marker))
    fresh: dict[str, list[tuple[str, str, bool]]] = {"template": [], "checkpoint": []}
    for name, marker in templates:
        used = in_use(marker)
        if marker.builder != BUILDER_VERSION:
            stale = f"built by builder version {marker.builder}"
        elif marker.kind == "template" and str(marker.partition_start or "") < month.isoformat():
            stale = "its audit partition window starts in a past month"
        else:
            if marker.project == project:
                last = str(marker.last_used or marker.built_at or "")
                fresh[marker.kind].append((last, name, used))
            continue
        if not used:
            drop(name, f"stale {marker.kind}: {stale}", lock=name)
    # Checkpoints (migrations-only states a later build resumes from): two per chain are made.
    caps = {"template": keep_templates, "checkpoint": 2 * keep_templates}
    for kind, found in fresh.items():
        found.sort(reverse=True)
        for _last, name, busy in found[max(caps[kind], 0) :]:
            if not busy:
                drop(name, f"beyond the {caps[kind]} most recently used {kind}s", lock=name)
    return dropped
