"""A project's inputs — bootstrap, migrations, seeds — and what they add up to (no pytest import).

One :class:`Project` per process, made from the resolved settings.  Files are
found when first asked for and read once; nothing is parsed for the content
keys (the bytes are enough), so a run that reuses its templates never splits
a SQL file.

- :attr:`Project.id` names the project on this machine (its folders), so kept
  clusters and template caps are per project: one project's runs never evict
  another's templates.
- :attr:`Project.chain_key` names its migration chain (bootstrap + migration
  bytes): the embedded backend keeps one cluster per chain.
"""

from __future__ import annotations

import glob
import hashlib
import os
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import InputNotFoundError, SeedNotFoundError
from .marker import BUILDER_VERSION

if TYPE_CHECKING:
    from .config import Settings
    from .migrations import Migration

SYSTEM_SEED_PATTERN = "001_*.sql"
DEV_SEED_PATTERN = "002_*.sql"


def _digest(*parts: bytes) -> hashlib._Hash:
    h = hashlib.sha256()
    for part in parts:
        h.update(part + b"\0")
    return h


class Project:
    """The inputs of one project, as the settings name them."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    # ------------------------------------------------------------ identity

    @cached_property
    def identity_paths(self) -> tuple[Path, ...]:
        return tuple(
            Path(os.path.realpath(p)) for p in (*self.settings.migrations, *self.settings.bootstrap)
        )

    @cached_property
    def id(self) -> str:
        """Which project this is on this machine: its folders, not their contents."""
        return _digest(*(str(p).encode() for p in self.identity_paths)).hexdigest()[:8]

    @cached_property
    def chain_key(self) -> str:
        """The migration chain: every file of the bootstrap and migration folders, as bytes.

        Read without parsing anything (the server starts before the runner loads):
        a change anywhere in those folders is a new chain, even one the runner
        ignores — that costs a cluster copy, never a wrong result.
        """
        h = _digest(f"builder={BUILDER_VERSION}".encode())
        for folder in (*self.settings.bootstrap, *self.settings.migrations):
            for path in sorted(p for p in folder.rglob("*") if p.is_file()):
                h.update(os.fsencode(path.relative_to(folder)) + b"\0" + path.read_bytes() + b"\0")
        return h.hexdigest()[:10]

    def check_folders(self) -> None:
        """Fail fast (before a server starts) when a configured folder does not exist."""
        for folder in self.settings.migrations:
            if not folder.exists():
                from .layouts import missing_folder

                raise missing_folder(folder)
        self.bootstrap  # noqa: B018 - raises for a missing bootstrap folder
        self.system_seed  # noqa: B018 - raises for a missing seed

    def prefix_keys(self, major: int) -> list[str]:
        """The keys of the migrations-only states after 0, 1 … n versioned migrations.

        A checkpoint carries one: a build whose chain starts with the same
        bootstrap and migrations resumes from it.
        """
        from .templates import file_bytes

        h = _digest(f"builder={BUILDER_VERSION}".encode(), f"major={major}".encode())
        for path in self.bootstrap:
            h.update(b"bootstrap\0" + path.name.encode() + b"\0" + file_bytes(path) + b"\0")
        keys = [h.hexdigest()[:16]]
        for mig in self.migrations:
            if mig.kind != "versioned":
                continue
            h.update(b"migration\0" + mig.name.encode() + b"\0" + mig.content_bytes() + b"\0")
            keys.append(h.hexdigest()[:16])
        return keys

    # ------------------------------------------------------------ files

    @cached_property
    def migrations(self) -> list[Migration]:
        from .migrations import discover

        return discover(list(self.settings.migrations))

    @cached_property
    def bootstrap(self) -> list[Path]:
        """The bootstrap SQL files, folder by folder, each folder's files by name."""
        files: list[Path] = []
        for folder in self.settings.bootstrap:
            if not folder.is_dir():
                raise InputNotFoundError(
                    f"bootstrap folder {folder} does not exist",
                    hint="set --clinicdb-bootstrap=DIR (ini clinicdb_bootstrap) to a folder of "
                    ".sql files, or leave it out",
                )
            files += sorted(p for p in folder.iterdir() if p.suffix == ".sql" and p.is_file())
        return files

    @cached_property
    def system_seed(self) -> Path | None:
        """The system seed (001), or None: it is optional."""
        return self._seed(self.settings.system_seed, SYSTEM_SEED_PATTERN, "system seed", True)

    @cached_property
    def _dev_seed(self) -> Path | None:
        return self._seed(self.settings.dev_seed_file, DEV_SEED_PATTERN, "dev seed", True)

    def dev_seed(self) -> Path:
        """The DEV/TEST ONLY seed (002); an error saying why there is none."""
        seed = self._dev_seed
        if seed is not None:
            return seed
        raise SeedNotFoundError(
            f"a test needs the dev seed, but {self.no_dev_seed()}",
            hint="name the file with --clinicdb-dev-seed-file=FILE (ini clinicdb_dev_seed_file), "
            "or point --clinicdb-seeds=DIR at the folder holding 002_*.sql",
        )

    def no_dev_seed(self) -> str:
        """Why the project has no dev seed, naming the setting that says so."""
        s = self.settings
        if s.dev_seed_file == "":
            return f"it is switched off ({s.source_of('dev_seed_file')} = none)"
        if s.seeds is None:
            source = s.source_of("seeds")
            return f"there is no dev seed file and seeds are switched off ({source} = none)"
        return f"there is no {DEV_SEED_PATTERN} in the seeds folder {s.display_path(s.seeds)}"

    def _seed(self, option: str | None, pattern: str, what: str, optional: bool) -> Path | None:
        s = self.settings
        name = "system_seed" if what == "system seed" else "dev_seed_file"
        if option == "":
            return None  # switched off with "none"
        if option is not None:
            return _one(sorted(glob.glob(option)), option, what, s.source_of(name))
        if s.seeds is None:
            return None
        if not s.seeds.is_dir():
            if s.given("seeds"):
                raise SeedNotFoundError(
                    f"seeds folder {s.seeds} does not exist",
                    hint="set --clinicdb-seeds=DIR (ini clinicdb_seeds, env CLINICDB_SEEDS), "
                    "or --clinicdb-seeds=none to run without seeds",
                )
            return None  # the default folder: a project may simply have no seeds
        matches = sorted(str(p) for p in s.seeds.glob(pattern))
        if not matches and optional:
            return None
        return _one(matches, str(s.seeds / pattern), what, "the seeds folder")

    def display(self, path: Path) -> str:
        return self.settings.display_path(path)


def _one(matches: list[str], pattern: str, what: str, source: str) -> Path:
    if not matches:
        raise SeedNotFoundError(
            f"{what} {pattern} ({source}): no such file",
            hint=f"check the path (relative paths start at the ini file's folder, or at the "
            f"current folder on the command line), or set it to none for no {what}",
        )
    if len(matches) > 1:
        names = ", ".join(Path(m).name for m in matches)
        raise SeedNotFoundError(
            f"{what} {pattern} ({source}) matches several files: {names}",
            hint=f"name exactly one {what} file",
        )
    return Path(matches[0])
