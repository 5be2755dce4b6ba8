"""The migration lock file: every applied migration's checksum, committed with the code.

``migrations.lock`` (beside the first migrations folder) records each
migration's name, checksum and a checksum of its SQL without comments and
layout.  :func:`check_migration_lock` compares the folder with it and reports
what the playbook forbids — an edited, removed or renamed migration, a new one
sorting before a locked one — telling a layout-only edit from an SQL edit.
Repeatable migrations (Flyway's ``R__``) are meant to change and are not
judged.  Checksums ignore line endings and a byte-order mark, so re-saving a
file on another platform is not an edit (no pytest import).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ._sqlsplit import normalize_sql
from .checks import Finding

if TYPE_CHECKING:
    from .migrations import Migration

LOCK_FILE = "migrations.lock"
FORMAT = 1


def _folders(migrations: Path | Sequence[Path]) -> list[Path]:
    return [migrations] if isinstance(migrations, Path) else list(migrations)


def default_lock_path(migrations: Path | Sequence[Path]) -> Path:
    return _folders(migrations)[0].parent / LOCK_FILE


def _discover(migrations: Path | Sequence[Path]) -> list[Migration]:
    from .migrations import discover

    return discover(_folders(migrations))


def _repeatable(m: Migration) -> bool:
    return m.kind == "repeatable"


def lock_entries(migrations: Sequence[Migration]) -> list[dict[str, object]]:
    entries: list[dict[str, object]] = []
    for m in migrations:
        entry: dict[str, object] = {
            "name": m.name,
            "sha256": m.checksum,
            "normalized_sha256": hashlib.sha256(normalize_sql(m.file.text).encode()).hexdigest(),
        }
        if _repeatable(m):
            entry["repeatable"] = True
        entries.append(entry)
    return entries


def write_lock(migrations: Path | Sequence[Path], lock_path: Path | None = None) -> Path:
    """Write the checksum lock file (default ``migrations.lock`` beside the first folder)."""
    lock_path = lock_path or default_lock_path(migrations)
    body = {"format": FORMAT, "migrations": lock_entries(_discover(migrations))}
    lock_path.write_text(json.dumps(body, indent=2) + "\n")
    return lock_path


def check_migration_lock(
    migrations: Path | Sequence[Path], lock_path: Path | None = None
) -> list[Finding]:
    """Historical migrations must match the lock: bytes, names, order."""
    lock_path = lock_path or default_lock_path(migrations)
    relock = f"review the change, then run `clinicdb lock` to refresh {lock_path.name}"
    try:
        locked = json.loads(lock_path.read_text())["migrations"]
    except FileNotFoundError:
        return [
            Finding(
                "migration-lock",
                f"no lock file {lock_path}",
                "run `clinicdb lock` and commit the file",
            )
        ]
    except (ValueError, KeyError, TypeError) as exc:
        return [Finding("migration-lock", f"{lock_path} is not a valid lock file: {exc}", relock)]
    chain = _discover(migrations)
    current = {m.name: m for m in chain}
    position = {m.name: i for i, m in enumerate(chain)}
    findings = []
    locked_names = {str(e["name"]) for e in locked}
    last_locked = max(
        (position[n] for n in locked_names if n in position and not _repeatable(current[n])),
        default=-1,
    )
    for entry in locked:
        if entry.get("repeatable"):
            continue  # meant to change; re-applied when it does
        now = current.get(entry["name"])
        if now is None:
            findings.append(
                Finding(
                    "migration-lock",
                    f"{entry['name']} was removed or renamed (it is in the lock file)",
                    "restore it: applied migrations are never removed or renamed; "
                    "write a new migration instead",
                )
            )
            continue
        if now.matches(entry["sha256"]):  # also a raw checksum of the file before a re-save
            continue
        normalized = hashlib.sha256(normalize_sql(now.file.text).encode()).hexdigest()
        kind = (
            "only comments or whitespace changed"
            if normalized == entry.get("normalized_sha256")
            else "its SQL changed"
        )
        findings.append(
            Finding(
                "migration-lock",
                f"{entry['name']} was edited after it was locked: {kind}",
                "revert it and put the change in a new migration"
                if kind == "its SQL changed"
                else "revert the edit, or " + relock,
            )
        )
    for name, m in current.items():
        if name in locked_names or _repeatable(m):
            continue
        if position[name] < last_locked:
            later = chain[last_locked].name
            findings.append(
                Finding(
                    "migration-lock",
                    f"new migration {name} sorts before the locked {later}: databases that "
                    "already ran the later ones would apply it out of order",
                    "renumber it after the last existing migration",
                )
            )
        else:
            findings.append(
                Finding("migration-lock", f"new migration {name} is not in the lock file", relock)
            )
    return findings
