"""Migration folder layouts of the common tools, detected folder by folder.

Point pytest-clinicdb at the folder your migration tool already uses; it reads
the files as that tool does, applies the same ones in the same order, and
leaves out what the tool leaves out.

``numbered`` — pytest-clinicdb's own
    ``<number>_<name>.sql`` (or ``<number>-<name>.sql``), ordered by the number
    (``10_x`` after ``9_x``).  Any other ``.sql`` file is refused: it is most
    likely a migration with a mistyped name.

``golang-migrate``
    ``<version>_<title>.up.sql`` runs, ordered by the version number;
    ``<version>_<title>.down.sql`` never runs (one note for all of them).  One
    ``.up.sql`` per version.

``flyway``
    ``V<version>__<description>.sql`` with versions such as ``1``, ``13.1`` or
    ``2_1`` (= ``2.1``), compared part by part as numbers, trailing zeros
    ignored (``1.0`` is ``1``).  The folder is read with its subfolders, and
    several folders (Flyway's *locations*) are merged by version.
    ``R__<description>.sql`` are repeatable: they run after all versioned
    ones, ordered by description, and run again whenever their checksum
    changes.  ``U<version>__…`` undo files never run; ``V…sql.conf`` script
    configuration is read for ``executeInTransaction=false``.  Not supported,
    skipped with a note: baseline migrations (``B<version>__``), callbacks
    (``beforeMigrate.sql``, ``afterMigrate.sql`` …), placeholders (``${…}`` are
    sent as written).

``dbmate``
    ``<version>_<name>.sql`` (any name starting with digits) holding
    ``-- migrate:up`` and ``-- migrate:down`` sections: only the up sections
    run.  ``-- migrate:up transaction:false`` runs the file outside a
    transaction.  Ordered by file name, as dbmate sorts them.

``goose``
    ``<version>_<name>.sql`` with ``-- +goose Up`` / ``-- +goose Down``
    annotations: only the up part runs.  ``-- +goose NO TRANSACTION`` runs the
    file outside a transaction; ``StatementBegin`` / ``StatementEnd`` are
    accepted (statements are split by a SQL lexer that needs no help with
    dollar quotes or ``BEGIN ATOMIC``).  Ordered by version number.  Refused:
    ``-- +goose ENVSUBST ON`` (values from the environment of whoever runs
    goose).  Go migrations (``.go``) are skipped with a note.

``supabase``
    A folder ``supabase/migrations`` of ``<timestamp>_<name>.sql`` files,
    ordered by file name as the Supabase CLI orders them: an 8-digit
    ``20240130_x.sql`` sorts among ``20240130…`` 14-digit names by text, not
    before all of them as a number would.  Other files are skipped with a note
    (the CLI skips them too).

Detection: a folder named ``migrations`` inside one named ``supabase`` is
Supabase's; otherwise file names tell golang-migrate (``.up.sql`` /
``.down.sql``) and Flyway (``V1__``, ``R__``); file contents tell goose
(``-- +goose Up``) and dbmate (``-- migrate:up``); anything else is
``numbered``.  A folder that mixes two tools' files is refused.

Files that are not migrations (a checksum file such as ``atlas.sum``, a README)
are skipped with a note.  Two migrations with the same version are refused,
with a hint in the words of the tool.  Any migration of any layout may start
with ``-- clinicdb:no-transaction`` among its first comment lines to run
outside a transaction; statements that cannot run inside one (``CREATE INDEX
CONCURRENTLY`` …) do that by themselves.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from .errors import MigrationDiscoveryError, SQLSyntaxUnsupportedError
from .sqlfile import Note, Outside, SQLFile, display_name, safe_path, sql_file_from_bytes

NUMBERED = "numbered"
GOLANG_MIGRATE = "golang-migrate"
FLYWAY = "flyway"
DBMATE = "dbmate"
GOOSE = "goose"
SUPABASE = "supabase"
LAYOUTS = (NUMBERED, GOLANG_MIGRATE, FLYWAY, DBMATE, GOOSE, SUPABASE)
#: layouts whose tool orders migrations by file name rather than by version number
BY_NAME = (DBMATE, SUPABASE)

_NUMBERED = re.compile(r"^(\d+)[_-].*\.sql$")
_GOLANG = re.compile(r"^(\d+)_(.*)\.(up|down)\.sql$")
_FLYWAY_V = re.compile(r"^V(\d+(?:[._]\d+)*)__(.+)\.sql$")
_FLYWAY_R = re.compile(r"^R__(.+)\.sql$")
_FLYWAY_U = re.compile(r"^U(\d+(?:[._]\d+)*)__(.+)\.sql$")
_FLYWAY_B = re.compile(r"^B(\d+(?:[._]\d+)*)__(.+)\.sql$")
_FLYWAY_CALLBACK = re.compile(r"^(?:before|after)[A-Za-z]*(?:__.*)?\.sql$")
_DIGITS_SQL = re.compile(r"^(\d+).*\.sql$")
_GOOSE_NAME = re.compile(r"^(\d+)_.*\.sql$")
_SUPABASE = re.compile(r"^([0-9]+)_(.*)\.sql$")
_GOOSE_MARK = re.compile(rb"(?m)^--[ \t]*\+goose Up[ \t]*\r?$")
_DBMATE_MARK = re.compile(rb"(?m)^--[ \t]*migrate:up\b")
_DBMATE_UP = re.compile(r"(?m)^--[ \t]*migrate:up\b([^\n]*)$")
_DBMATE_DOWN = re.compile(r"(?m)^--[ \t]*migrate:down\b[^\n]*$")
_GOOSE_ANNOTATION = re.compile(r"(?m)^--[ \t]*\+goose\b[^\n]*$")
_FLYWAY_EVIDENCE = (_FLYWAY_V, _FLYWAY_R, _FLYWAY_U, _FLYWAY_B)

_DUPLICATE_HINTS = {
    NUMBERED: "give each migration its own number; renumber the newer, unapplied one",
    GOLANG_MIGRATE: "golang-migrate allows one .up.sql per version; renumber the newer, "
    "unapplied one (`migrate create -seq` gives the next number)",
    FLYWAY: "Flyway refuses two migrations with one version too; give the newer, unapplied one "
    "a higher version (e.g. V1.1__)",
    DBMATE: "dbmate records migrations by version and would take the second file for applied; "
    "give it a version of its own (`dbmate new` makes a timestamp)",
    GOOSE: "goose refuses duplicate versions too; renumber the newer, unapplied one",
    SUPABASE: "the Supabase CLI records migrations by version; give the newer one a timestamp "
    "of its own (`supabase migration new`)",
}


@dataclass(frozen=True, order=True)
class Version:
    """A migration's version: ``key`` orders it, ``text`` is how the file name writes it."""

    key: tuple[int, ...]
    text: str = field(compare=False)

    def __str__(self) -> str:
        return self.text


@dataclass
class Entry:
    """One migration as its layout reads it."""

    file: SQLFile
    name: str
    layout: str
    kind: str = "versioned"
    version: Version | None = None
    description: str = ""
    order: tuple[object, ...] = ()
    notes: list[Note] = field(default_factory=list)


@dataclass
class FolderScan:
    """What a folder holds: its layout, its migrations, and notes on what was left out."""

    folder: Path
    layout: str
    entries: list[Entry] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)


def missing_folder(folder: Path) -> MigrationDiscoveryError:
    """The error for a migrations folder that is not there."""
    return MigrationDiscoveryError(
        f"migrations directory {safe_path(folder)} does not exist",
        hint="set --clinicdb-migrations=DIR (ini clinicdb_migrations, env CLINICDB_MIGRATIONS); "
        "write the option with '=': a path as a separate word also changes pytest's rootdir",
    )


def scan_folder(folder: Path) -> FolderScan:
    """Detect ``folder``'s layout and read its migrations (not split).

    Raises :class:`MigrationDiscoveryError` for a missing folder, a folder that
    mixes layouts, a file its layout's tool would refuse, and duplicate
    versions within the folder.
    """
    if not folder.exists():
        raise missing_folder(folder)
    if not folder.is_dir():
        raise MigrationDiscoveryError(f"migrations path {safe_path(folder)} is not a directory")
    files, subfolders = _listing(folder)
    datas: dict[Path, bytes] = {}
    layout = _detect(folder, files, subfolders, datas)
    scan = FolderScan(folder, layout)
    reader = {
        NUMBERED: _numbered,
        GOLANG_MIGRATE: _golang,
        FLYWAY: _flyway,
        DBMATE: _dbmate,
        GOOSE: _goose,
        SUPABASE: _supabase,
    }[layout]
    if layout == FLYWAY:
        files = _walk(folder)
    else:
        for sub in subfolders:
            if any(p.suffix == ".sql" for p in sub.iterdir()):
                scan.notes.append(
                    Note(
                        sub,
                        None,
                        "folder skipped: subfolders are not read (only Flyway reads them)",
                    )
                )
    reader(scan, files, datas)
    check_duplicates(scan.entries)
    return scan


def check_duplicates(entries: list[Entry]) -> None:
    """Refuse two migrations with one version (or two repeatables with one description)."""
    seen: dict[object, Entry] = {}
    for entry in entries:
        if entry.kind == "repeatable":
            key: object = ("R", entry.description)
        else:
            assert entry.version is not None
            key = ("V", entry.version.key if entry.layout not in BY_NAME else entry.version.text)
        other = seen.get(key)
        if other is None:
            seen[key] = entry
            continue
        a, b = _names(other, entry)
        if entry.kind == "repeatable":
            raise MigrationDiscoveryError(
                f"repeatable migrations {a} and {b} share the description {entry.description!r}",
                hint="Flyway refuses that too; rename one of them",
            )
        assert entry.version is not None and other.version is not None
        if entry.layout == NUMBERED:
            same = f"the number {entry.version}"
        elif entry.layout == FLYWAY and other.version.text != entry.version.text:
            same = f"the version {entry.version} ({other.version} and {entry.version} are one "
            same += "version to Flyway: trailing zeros do not count)"
        else:
            same = f"the version {entry.version}"
        raise MigrationDiscoveryError(
            f"migrations {a} and {b} share {same}",
            hint=_DUPLICATE_HINTS[entry.layout],
        )


def _names(a: Entry, b: Entry) -> tuple[str, str]:
    if a.file.path.parent == b.file.path.parent:
        return display_name(a.file.path), display_name(b.file.path)
    return str(safe_path(a.file.path)), str(safe_path(b.file.path))


# --------------------------------------------------------------------------- detection


def _listing(folder: Path) -> tuple[list[Path], list[Path]]:
    files, subfolders = [], []
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            continue
        if path.is_dir():
            subfolders.append(path)
        else:
            files.append(path)  # dangling symbolic links too: reading them names the target
    return files, subfolders


def _walk(folder: Path) -> list[Path]:
    found: list[Path] = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            continue
        if path.is_dir():
            found.extend(_walk(path))
        else:
            found.append(path)
    return found


def _is_supabase(folder: Path) -> bool:
    folder = folder.absolute()
    return folder.name == "migrations" and folder.parent.name == "supabase"


def _read(path: Path, datas: dict[Path, bytes]) -> bytes:
    if path not in datas:
        try:
            datas[path] = path.read_bytes()
        except OSError:
            datas[path] = b""  # reported when the file is read as a migration
    return datas[path]


def _detect(
    folder: Path, files: list[Path], subfolders: list[Path], datas: dict[Path, bytes]
) -> str:
    if _is_supabase(folder):
        return SUPABASE
    evidence: dict[str, str] = {}
    for path in files:
        name = path.name
        if _GOLANG.match(name):
            evidence.setdefault(GOLANG_MIGRATE, name)
        elif any(p.match(name) for p in _FLYWAY_EVIDENCE):
            evidence.setdefault(FLYWAY, name)
        elif _DIGITS_SQL.match(name):
            data = _read(path, datas)
            if _GOOSE_MARK.search(data):
                evidence.setdefault(GOOSE, name)
            elif _DBMATE_MARK.search(data):
                evidence.setdefault(DBMATE, name)
    if not evidence and subfolders:
        deep = [p for sub in subfolders for p in _walk(sub)]
        if any(any(pat.match(p.name) for pat in _FLYWAY_EVIDENCE) for p in deep):
            return FLYWAY
    if len(evidence) > 1:
        shown = ", ".join(f"{layout} ({name})" for layout, name in evidence.items())
        raise MigrationDiscoveryError(
            f"migrations directory {safe_path(folder)} mixes the files of several tools: {shown}",
            hint="keep one tool's migrations per folder; list several folders if you need them",
        )
    return next(iter(evidence), NUMBERED)


# --------------------------------------------------------------------------- readers


def _migration_file(path: Path, datas: dict[Path, bytes]) -> SQLFile:
    data = datas.get(path)
    if data is None or data == b"":
        try:
            data = path.read_bytes()
        except OSError:
            from .sqlfile import read_sql_file

            return read_sql_file(path, what="migration")  # raises, naming the problem
    return sql_file_from_bytes(path, data, what="migration")


def _not_sql(scan: FolderScan, path: Path) -> None:
    name = path.name
    if name == "atlas.sum":
        why = "Atlas's checksum file, not a migration"
    elif name.endswith(".sum"):
        why = "a checksum file, not a migration"
    elif path.suffix == ".go":
        why = "a Go migration: only SQL migrations run here"
    else:
        why = "not a .sql file"
    scan.notes.append(Note(path, None, f"skipped, {why}"))


def _numbered(scan: FolderScan, files: list[Path], datas: dict[Path, bytes]) -> None:
    for path in files:
        if path.suffix != ".sql":
            _not_sql(scan, path)
            continue
        m = _NUMBERED.match(path.name)
        if not m:
            raise MigrationDiscoveryError(
                f"migration {display_name(path)} has no numeric prefix",
                hint="name migrations <number>_<what>.sql, e.g. 020_add_invoices.sql",
            )
        number = int(m.group(1))
        version = Version((number,), str(number))
        scan.entries.append(
            Entry(
                _migration_file(path, datas),
                _ledger_name(path),
                NUMBERED,
                version=version,
                order=(0, version.key),
            )
        )


def _golang(scan: FolderScan, files: list[Path], datas: dict[Path, bytes]) -> None:
    downs: list[Path] = []
    for path in files:
        m = _GOLANG.match(path.name)
        if not m:
            if path.suffix == ".sql":
                scan.notes.append(
                    Note(
                        path, None, "skipped, not a golang-migrate name (<version>_<title>.up.sql)"
                    )
                )
            else:
                _not_sql(scan, path)
            continue
        if m.group(3) == "down":
            downs.append(path)
            continue
        number = int(m.group(1))
        version = Version((number,), str(number))
        scan.entries.append(
            Entry(
                _migration_file(path, datas),
                _ledger_name(path),
                GOLANG_MIGRATE,
                version=version,
                description=m.group(2),
                order=(0, version.key),
            )
        )
    if downs:
        scan.notes.append(
            Note(
                scan.folder,
                None,
                f"skipped {len(downs)} down migration(s) (*.down.sql): golang-migrate runs them "
                "only when migrating down",
            )
        )


def flyway_version(text: str) -> Version:
    """A Flyway version: parts split on ``.`` or ``_``, compared as numbers, no trailing zeros."""
    parts = [int(p) for p in re.split(r"[._]", text)]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return Version(tuple(parts), text.replace("_", "."))


def _flyway(scan: FolderScan, files: list[Path], datas: dict[Path, bytes]) -> None:
    undo: list[Path] = []
    confs = {p for p in files if p.name.endswith(".sql.conf")}
    for path in files:
        name = path.name
        if path in confs:
            if path.with_name(name[: -len(".conf")]) not in files:
                scan.notes.append(
                    Note(path, None, "skipped, a script configuration without its script")
                )
            continue
        v, r = _FLYWAY_V.match(name), _FLYWAY_R.match(name)
        if v or r:
            file = _migration_file(path, datas)
            entry = Entry(file, _ledger_name(path), FLYWAY)
            if v:
                entry.version = flyway_version(v.group(1))
                entry.description = v.group(2).replace("_", " ")
                entry.order = (0, entry.version.key)
            else:
                assert r is not None
                entry.kind = "repeatable"
                entry.description = r.group(1).replace("_", " ")
                entry.order = (1, tuple(ord(c) for c in entry.description))
            conf = path.with_name(name + ".conf")
            if conf in confs:
                _flyway_conf(scan, entry, conf)
            scan.entries.append(entry)
        elif _FLYWAY_U.match(name):
            undo.append(path)
        elif _FLYWAY_B.match(name):
            scan.notes.append(
                Note(
                    path,
                    None,
                    "skipped, a Flyway baseline migration: not supported (the versioned "
                    "migrations it stands for must be present)",
                )
            )
        elif _FLYWAY_CALLBACK.match(name):
            scan.notes.append(
                Note(
                    path,
                    None,
                    "skipped, a Flyway callback: callbacks do not run here (put what it does in a "
                    "repeatable R__ migration)",
                )
            )
        elif path.suffix == ".sql":
            scan.notes.append(
                Note(path, None, "skipped, not a Flyway migration name (V1__x.sql, R__x.sql)")
            )
        else:
            _not_sql(scan, path)
    if undo:
        scan.notes.append(
            Note(
                scan.folder,
                None,
                f"skipped {len(undo)} undo migration(s) (U…__*.sql): Flyway runs them only on undo",
            )
        )


def _flyway_conf(scan: FolderScan, entry: Entry, conf: Path) -> None:
    try:
        text = conf.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise MigrationDiscoveryError(f"cannot read {safe_path(conf)}: {exc}") from exc
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = (part.strip() for part in line.partition("="))
        if key == "executeInTransaction" and value.lower() == "false":
            reason = Outside(conf, number, "executeInTransaction=false", "marker")
            entry.file = replace(entry.file, no_transaction=reason)
        elif key == "executeInTransaction" and value.lower() == "true":
            continue
        else:
            scan.notes.append(Note(conf, number, f"{key} ignored: not supported"))


def _dbmate(scan: FolderScan, files: list[Path], datas: dict[Path, bytes]) -> None:
    for path in files:
        m = _DIGITS_SQL.match(path.name)
        if not m:
            if path.suffix == ".sql":
                scan.notes.append(
                    Note(path, None, "skipped, not a dbmate name (<version>_<name>.sql)")
                )
            else:
                _not_sql(scan, path)
            continue
        file = _migration_file(path, datas)
        entry = Entry(file, _ledger_name(path), DBMATE)
        entry.version = Version(tuple(ord(c) for c in path.name), m.group(1))
        entry.order = (0, entry.version.key)
        _dbmate_sections(entry)
        scan.entries.append(entry)


def _dbmate_sections(entry: Entry) -> None:
    file = entry.file
    text = file.text
    ups = list(_DBMATE_UP.finditer(text))
    if not ups:
        raise SQLSyntaxUnsupportedError(
            safe_path(file.path),
            1,
            "dbmate migration without '-- migrate:up'",
            hint="dbmate requires each migration to start its up block with '-- migrate:up'",
        )
    before = text[: ups[0].start()]
    for number, line in enumerate(before.splitlines(), start=1):
        if line.strip() and not line.strip().startswith("--"):
            raise SQLSyntaxUnsupportedError(
                safe_path(file.path),
                number,
                "SQL before '-- migrate:up'",
                hint="dbmate refuses statements before the up block; move them below "
                "'-- migrate:up'",
            )
    masks: list[tuple[int, int]] = []
    for i, up in enumerate(ups):
        end = ups[i + 1].start() if i + 1 < len(ups) else len(text)
        downs = list(_DBMATE_DOWN.finditer(text, up.end(), end))
        if len(downs) > 1:
            raise SQLSyntaxUnsupportedError(
                safe_path(file.path),
                _line(text, downs[1].start()),
                "a second '-- migrate:down' in one section",
                hint="dbmate allows one down block after each '-- migrate:up'",
            )
        options = dict(
            tuple(opt.split(":", 1)) for opt in up.group(1).split() if opt.count(":") == 1
        )
        if options.get("transaction") == "false" and file.no_transaction is None:
            reason = Outside(
                file.path, _line(text, up.start()), "dbmate transaction:false", "marker"
            )
            file = replace(file, no_transaction=reason)
        if downs:
            masks.append((downs[0].start(), end))
            entry.notes.append(
                Note(
                    file.path,
                    _line(text, downs[0].start()),
                    f"down section (lines {_line(text, downs[0].start())}-"
                    f"{_line(text, max(end - 1, downs[0].start()))}) not run",
                )
            )
    entry.file = replace(
        file, runnable_text=_blank(text, masks), kept_text=_cut(text, masks), allow_empty=True
    )


def _goose(scan: FolderScan, files: list[Path], datas: dict[Path, bytes]) -> None:
    for path in files:
        m = _GOOSE_NAME.match(path.name)
        if not m:
            if path.suffix == ".sql":
                scan.notes.append(
                    Note(path, None, "skipped, not a goose name (<version>_<name>.sql)")
                )
            else:
                _not_sql(scan, path)
            continue
        number = int(m.group(1))
        entry = Entry(_migration_file(path, datas), _ledger_name(path), GOOSE)
        entry.version = Version((number,), str(number))
        entry.order = (0, entry.version.key)
        _goose_sections(entry)
        scan.entries.append(entry)


def _goose_sections(entry: Entry) -> None:
    file = entry.file
    text = file.text
    path = safe_path(file.path)
    up: int | None = None
    down: int | None = None
    depth = 0
    no_tx: Outside | None = None
    for m in _GOOSE_ANNOTATION.finditer(text):
        command = m.group(0)[2:].strip()
        line = _line(text, m.start())
        in_up = up is not None and down is None
        if command == "+goose Up":
            if up is not None:
                raise SQLSyntaxUnsupportedError(
                    path, line, "a second '-- +goose Up'", hint="goose allows one Up per file"
                )
            up = m.end()
        elif command == "+goose Down":
            if up is None or down is not None:
                raise SQLSyntaxUnsupportedError(
                    path,
                    line,
                    "'-- +goose Down' before '-- +goose Up'"
                    if up is None
                    else "a second '-- +goose Down'",
                    hint="goose needs '-- +goose Up' first, then at most one '-- +goose Down'",
                )
            if depth:
                raise SQLSyntaxUnsupportedError(
                    path, line, "'-- +goose StatementBegin' without its StatementEnd",
                    hint="close the statement with '-- +goose StatementEnd'",
                )  # fmt: skip
            down = m.start()
        elif command == "+goose StatementBegin" and (in_up or down is not None):
            depth += 1
        elif command == "+goose StatementEnd" and (in_up or down is not None):
            depth -= 1
            if depth < 0:
                raise SQLSyntaxUnsupportedError(
                    path, line, "'-- +goose StatementEnd' without a StatementBegin",
                    hint="goose pairs every StatementEnd with a StatementBegin before it",
                )  # fmt: skip
        elif command == "+goose NO TRANSACTION":
            no_tx = no_tx or Outside(file.path, line, "goose NO TRANSACTION", "marker")
        elif command == "+goose ENVSUBST ON" and down is None:
            raise SQLSyntaxUnsupportedError(
                path,
                line,
                "'-- +goose ENVSUBST ON' is not supported",
                hint="the values would come from the environment of whoever runs the tests; "
                "write them into the SQL",
            )
    if up is None:
        raise SQLSyntaxUnsupportedError(
            path,
            1,
            "goose migration without '-- +goose Up'",
            hint="goose requires '-- +goose Up' before the statements of every migration",
        )
    for number, line_text in enumerate(text[:up].splitlines(), start=1):
        if line_text.strip() and not line_text.strip().startswith("--"):
            raise SQLSyntaxUnsupportedError(
                path,
                number,
                "SQL before '-- +goose Up'",
                hint="goose refuses statements before the Up annotation; move them below it",
            )
    if depth and down is None:
        raise SQLSyntaxUnsupportedError(
            path, _line(text, len(text)), "'-- +goose StatementBegin' without its StatementEnd",
            hint="close the statement with '-- +goose StatementEnd'",
        )  # fmt: skip
    masks = []
    if down is not None:
        masks.append((down, len(text)))
        entry.notes.append(
            Note(
                file.path,
                _line(text, down),
                f"down section (lines {_line(text, down)}-{_line(text, len(text) - 1)}) not run",
            )
        )
    entry.file = replace(
        file,
        runnable_text=_blank(text, masks),
        kept_text=_cut(text, masks),
        no_transaction=no_tx,
        allow_empty=True,
    )


def _supabase(scan: FolderScan, files: list[Path], datas: dict[Path, bytes]) -> None:
    for path in files:
        m = _SUPABASE.match(path.name)
        if not m:
            if path.suffix == ".sql":
                scan.notes.append(
                    Note(
                        path,
                        None,
                        "skipped, not a Supabase name (<timestamp>_name.sql); the CLI skips it too",
                    )
                )
            else:
                _not_sql(scan, path)
            continue
        entry = Entry(_migration_file(path, datas), _ledger_name(path), SUPABASE)
        digits = m.group(1)
        # The CLI lists the folder sorted by file name and applies it in that order.
        entry.version = Version(tuple(ord(c) for c in path.name), digits)
        entry.order = (0, entry.version.key)
        if len(digits) != 14:
            entry.notes.append(
                Note(
                    path,
                    None,
                    f"version {digits} has {len(digits)} digits, not 14: ordered by file name "
                    "as the Supabase CLI does",
                )
            )
        scan.entries.append(entry)


# --------------------------------------------------------------------------- helpers


def _ledger_name(path: Path) -> str:
    """The ledger name of a migration file: its name, printable (\\xNN for bytes not UTF-8)."""
    return display_name(path)


def _line(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _cut(text: str, masks: list[tuple[int, int]]) -> str | None:
    """``text`` without the ``masks`` ranges (what runs, for the checksum)."""
    if not masks:
        return None
    parts = []
    pos = 0
    for start, end in masks:
        parts.append(text[pos:start])
        pos = end
    parts.append(text[pos:])
    return "".join(parts)


def _blank(text: str, masks: list[tuple[int, int]]) -> str | None:
    """``text`` with the ``masks`` ranges turned into spaces, line breaks kept (offsets too)."""
    if not masks:
        return None
    parts = []
    pos = 0
    for start, end in masks:
        parts.append(text[pos:start])
        parts.append(re.sub(r"[^\n]", " ", text[start:end]))
        pos = end
    parts.append(text[pos:])
    return "".join(parts)
