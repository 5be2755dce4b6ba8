"""Settings: every option once, resolved CLI > environment > ini > default (no pytest import).

Each option has one name and three spellings: ``--clinicdb-pg-bin``,
``CLINICDB_PG_BIN`` and ini ``clinicdb_pg_bin``.  "Unset" is tested with
``is None`` so a false or empty value given on the command line still wins.
Relative paths are taken from the current directory (command line,
environment) or from the ini file's directory (ini, defaults).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError

BACKENDS = ("embedded", "docker", "external")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


@dataclass(frozen=True)
class OptionSpec:
    name: str
    help: str
    kind: str = "str"  # str | path | paths | seed | list | int | bool | choice
    default: object = None
    choices: tuple[str, ...] = ()
    metavar: str | None = None

    @property
    def cli(self) -> str:
        return "--clinicdb-" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return "CLINICDB_" + self.name.upper()

    @property
    def negative_cli(self) -> str:
        return "--clinicdb-no-" + self.name.replace("_", "-")

    @property
    def ini(self) -> str:
        return "clinicdb_" + self.name


OPTIONS: tuple[OptionSpec, ...] = (
    OptionSpec(
        "backend",
        "where the server comes from: local binaries (embedded), a testcontainers container "
        "(docker) or an existing server (external, with --clinicdb-dsn)",
        "choice",
        "embedded",
        BACKENDS,
    ),
    OptionSpec(
        "dsn",
        "connection string of the existing server for the external backend "
        "(its role needs CREATEDB)",
        "str",
        metavar="DSN",
    ),
    OptionSpec(
        "image",
        "docker image for the docker backend (default postgres:<--clinicdb-pg-version or 17>)",
        "str",
        metavar="IMAGE",
    ),
    OptionSpec(
        "allow_external_dev_seed",
        "allow the DEV/TEST ONLY seed 002 on the external backend's server",
        "bool",
        False,
    ),
    OptionSpec(
        "pg_bin",
        "directory with the PostgreSQL programs (postgres, initdb) to use",
        "path",
        metavar="DIR",
    ),
    OptionSpec(
        "pg_version",
        "PostgreSQL major version to use (e.g. 16); error if not installed",
        "int",
        metavar="N",
    ),
    OptionSpec(
        "migrations",
        "folder of migrations (numbered files, or the layout of golang-migrate, Flyway, dbmate, "
        "goose or the Supabase CLI); repeat the option, or one folder per ini line, for several",
        "paths",
        ("database/migrations",),
        metavar="DIR",
    ),
    OptionSpec(
        "seeds",
        "folder with 001_*.sql (system seed) and 002_*.sql (dev seed); 'none' for no seeds",
        "path",
        "database/seeds",
        metavar="DIR",
    ),
    OptionSpec(
        "system_seed",
        "the system seed file (or glob), loaded into every template; 'none' for none "
        "(default: 001_*.sql in the seeds folder, if there is one)",
        "seed",
        metavar="FILE",
    ),
    OptionSpec(
        "dev_seed_file",
        "the DEV/TEST ONLY seed file (or glob); 'none' for none "
        "(default: 002_*.sql in the seeds folder)",
        "seed",
        metavar="FILE",
    ),
    OptionSpec(
        "bootstrap",
        "folder of SQL files run before the migrations and kept out of the ledger: what the "
        "platform provides in production (roles, schemas, extensions); repeatable",
        "paths",
        metavar="DIR",
    ),
    OptionSpec(
        "schemas",
        "comma-separated schemas the checks look at (default: every schema except the system "
        "catalogs and those an extension owns)",
        "list",
        metavar="SCHEMAS",
    ),
    OptionSpec(
        "audit_tables",
        "comma-separated partitioned audit tables whose monthly partitions tests need "
        "(default: every table partitioned by range on a timestamp whose schema or name "
        "contains 'audit')",
        "list",
        metavar="TABLES",
    ),
    OptionSpec(
        "partition_function",
        "the project's partition maintenance function, called (from, to) as production's "
        "scheduled job would (default: found in the audit tables' schema; 'none' for plain "
        "CREATE TABLE … PARTITION OF)",
        "str",
        metavar="FUNCTION",
    ),
    OptionSpec(
        "tenant_role",
        "the application's database role, for the tenant-isolation check (e.g. clinic_app)",
        "str",
        metavar="ROLE",
    ),
    OptionSpec(
        "tenant_setting",
        "the session setting naming the tenant, for the tenant-isolation check "
        "(e.g. app.current_clinic_id)",
        "str",
        metavar="SETTING",
    ),
    OptionSpec(
        "tenants",
        "the tenant values the check acts for: a SQL query returning them (run on the dev "
        "template when there is a dev seed, else on clinic_db's), or a comma-separated list",
        "str",
        metavar="QUERY",
    ),
    OptionSpec(
        "tenant_shared",
        "comma-separated tables every tenant may see by design (schema.table)",
        "list",
        metavar="TABLES",
    ),
    OptionSpec(
        "run_as",
        "account that runs the server when pytest runs as root (default: postgres, else nobody)",
        "str",
        metavar="USER",
    ),
    OptionSpec(
        "dev_seed",
        "load the DEV/TEST ONLY seed 002 into clinic_db and clinic_dsn for the whole run",
        "bool",
        False,
    ),
    OptionSpec(
        "dev_seed_mode",
        "which triggers the dev-seed wrapper disables while 002 runs",
        "choice",
        "audit",
        ("audit", "user", "all"),
    ),
    OptionSpec(
        "dev_seed_tables",
        "comma-separated tables whose triggers the dev-seed wrapper disables "
        "(default: in mode audit every table of the schemas that carries an audit trigger; in "
        "modes user and all every table of the schemas)",
        "list",
        metavar="TABLES",
    ),
    OptionSpec(
        "environment",
        "app.environment the dev seed runs under (only development or test are accepted)",
        "choice",
        "test",
        ("development", "test"),
    ),
    OptionSpec(
        "cache_dir",
        "where clusters and relocated binaries live (default: tmpfs when available)",
        "path",
        metavar="DIR",
    ),
    OptionSpec(
        "reuse",
        "keep the server's data directory and templates between runs (a template is reused "
        "only while every migration and seed byte is unchanged)",
        "bool",
        True,
    ),
    OptionSpec(
        "rebuild",
        "build the templates again even if unchanged ones exist",
        "bool",
        False,
    ),
    OptionSpec(
        "keep_templates",
        "how many templates a kept server holds at most (the least recently used go first); "
        "also caps a project's kept clusters, and its checkpoints at twice as many",
        "int",
        5,
        metavar="N",
    ),
    OptionSpec(
        "recycle_clones",
        "give a clinic_db_fresh/clinic_dsn clone whose test left it unchanged or only inserted "
        "rows (no row updated or deleted, no catalog, setting or statistic changed, as the "
        "server counts them) to the next test instead of dropping it, the inserted rows deleted "
        "and the sequences set back (PostgreSQL 15 and later)",
        "bool",
        True,
    ),
    OptionSpec(
        "keep_failed",
        "keep the database of a failed clinic_db_fresh/clinic_dsn test and print its DSN",
        "bool",
        False,
    ),
    OptionSpec(
        "build_timeout",
        "seconds a template build step (a migration, a seed) may run before it is cancelled "
        "with an error naming it (0: no limit)",
        "int",
        300,
        metavar="SECONDS",
    ),
    OptionSpec(
        "connection_wait",
        "seconds to wait for a free connection slot on a busy server before stopping with a "
        "message",
        "int",
        30,
        metavar="SECONDS",
    ),
    OptionSpec(
        "check",
        "run the seed author's battery (lock file, seed idempotency and guards, triggers, "
        "audit partitions) instead of the collected tests",
        "bool",
        False,
    ),
    OptionSpec(
        "timings",
        "print where the set-up time went: server start, each migration, seeds, clones",
        "bool",
        False,
    ),
)


@dataclass(frozen=True)
class Settings:
    """The resolved configuration; ``sources`` says where each value came from."""

    backend: str
    pg_bin: Path | None
    pg_version: int | None
    migrations: tuple[Path, ...]
    seeds: Path | None
    run_as: str | None
    cache_dir: Path
    rootdir: Path
    sources: Mapping[str, str] = field(default_factory=dict)
    #: None: from the seeds folder; () : none; else the file or glob
    system_seed: str | None = None
    dev_seed_file: str | None = None
    bootstrap: tuple[Path, ...] = ()
    schemas: tuple[str, ...] | None = None
    audit_tables: tuple[str, ...] | None = None
    partition_function: str | None = None
    tenant_role: str | None = None
    tenant_setting: str | None = None
    tenants: str | None = None
    tenant_shared: tuple[str, ...] = ()
    dev_seed: bool = False
    dev_seed_mode: str = "audit"
    environment: str = "test"
    reuse: bool = True
    dsn: str | None = field(default=None, repr=False)
    image: str | None = None
    allow_external_dev_seed: bool = False
    dev_seed_tables: tuple[str, ...] | None = None
    rebuild: bool = False
    keep_templates: int = 5
    keep_failed: bool = False
    recycle_clones: bool = True
    timings: bool = False
    check: bool = False
    connection_wait: int = 30
    build_timeout: int = 300

    def source_of(self, name: str) -> str:
        return self.sources.get(name, "default")

    def given(self, name: str) -> bool:
        """Whether the option was set (command line, environment or ini), not defaulted."""
        return name in self.sources

    def display_path(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.rootdir))
        except ValueError:
            return str(path)


def default_cache_dir() -> Path:
    """tmpfs when it exists and has room (the disk is slow at creating files), else the temp dir."""
    uid = os.geteuid()
    shm = Path("/dev/shm")
    try:
        if shm.is_dir() and os.access(shm, os.W_OK) and shutil.disk_usage(shm).free > 1 << 30:
            return shm / f"pytest-clinicdb-{uid}"
    except OSError:
        pass
    return Path(tempfile.gettempdir()) / f"pytest-clinicdb-{uid}"


def _path(text: str, where: str, base: Path) -> Path:
    if not text:
        raise ConfigError(f"{where}: empty path")
    path = Path(os.path.expanduser(text))
    return (path if path.is_absolute() else base / path).resolve()


def _items(raw: object, sep: str) -> list[str]:
    """A multi-valued option's items: a list (repeated option, ini lines) or separated text."""
    parts = [str(r) for r in raw] if isinstance(raw, (list, tuple)) else str(raw).split(sep)
    return [p.strip() for p in parts if p.strip()]


def _convert(spec: OptionSpec, raw: object, where: str, base: Path) -> object:
    if spec.kind == "bool":
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ConfigError(f"{where}: {raw!r} is not a boolean", hint="use true or false")
    if spec.kind == "paths":
        # Several folders: a repeated option, one per ini line, or the OS path separator.
        items = _items(raw, os.pathsep if where.startswith("environment") else "\n")
        if not items:
            raise ConfigError(f"{where}: no folder given")
        return tuple(dict.fromkeys(_path(item, where, base) for item in items))
    if spec.kind == "list":
        items = _items(raw, ",")
        if not items:
            raise ConfigError(f"{where}: empty list", hint="e.g. clinic,booking")
        return tuple(items)
    text = str(raw).strip()
    if spec.kind == "int":
        try:
            return int(text)
        except ValueError:
            raise ConfigError(f"{where}: {raw!r} is not a whole number", hint="e.g. 16") from None
    if spec.kind == "choice":
        if text not in spec.choices:
            raise ConfigError(
                f"{where}: unknown value {raw!r}",
                hint="valid values: " + ", ".join(spec.choices),
            )
        return text
    if spec.kind == "seed":
        # A file or a glob, relative to where it was given; "none" switches it off.
        if text.lower() == "none":
            return ""
        if not text:
            raise ConfigError(f"{where}: empty path", hint="name a file, a glob, or none")
        path = Path(os.path.expanduser(text))
        return str(path if path.is_absolute() else base / path)
    if spec.kind == "path":
        if spec.name == "seeds" and text.lower() == "none":
            return None
        return _path(text, where, base)
    return text or None


def resolve(
    cli: Callable[[str], object],
    ini: Callable[[str], object],
    *,
    env: Mapping[str, str],
    rootdir: Path,
    inidir: Path | None = None,
    cwd: Path | None = None,
) -> Settings:
    """Resolve every option.  ``cli``/``ini`` return None for "not given"."""
    from .server import backend_names

    cwd = cwd or Path.cwd()
    inidir = inidir or rootdir
    values: dict[str, object] = {}
    sources: dict[str, str] = {}
    for spec in OPTIONS:
        if spec.name == "backend":
            spec = OptionSpec(spec.name, spec.help, spec.kind, spec.default, backend_names())
        raw = cli(spec.name)
        if raw is not None and raw != []:
            values[spec.name] = _convert(spec, raw, spec.cli, cwd)
            sources[spec.name] = spec.cli
            continue
        if spec.env in env:
            values[spec.name] = _convert(spec, env[spec.env], f"environment {spec.env}", cwd)
            sources[spec.name] = spec.env
            continue
        raw = ini(spec.name)
        if raw is not None and raw != "" and raw != []:
            values[spec.name] = _convert(spec, raw, f"ini {spec.ini}", inidir)
            sources[spec.name] = f"ini {spec.ini}"
            continue
        if spec.default is not None:
            values[spec.name] = _convert(spec, spec.default, spec.cli, rootdir)
        else:
            values[spec.name] = None
    if values["pg_version"] is not None and not 9 <= int(str(values["pg_version"])) <= 99:
        raise ConfigError(
            f"{sources['pg_version']}: {values['pg_version']} is not a PostgreSQL major version",
            hint="e.g. 14, 15, 16, 17 or 18",
        )
    if int(str(values["keep_templates"])) < 1:
        raise ConfigError(
            f"{sources.get('keep_templates', 'keep_templates')}: must be at least 1",
            hint="the template of the current run is always kept",
        )
    if values["backend"] == "external" and not values["dsn"]:
        raise ConfigError(
            f"{sources.get('backend', '--clinicdb-backend')}: the external backend needs a server",
            hint="give its connection string with --clinicdb-dsn or CLINICDB_DSN",
        )
    if values["dsn"] and values["backend"] != "external" and sources["dsn"] != "CLINICDB_DSN":
        # CLINICDB_DSN is shared with the clinicdb command: only the option and ini are errors.
        raise ConfigError(
            f"{sources['dsn']} is only used by the external backend",
            hint="add --clinicdb-backend external (or ini clinicdb_backend = external)",
        )
    if values["image"] and values["backend"] != "docker":
        raise ConfigError(
            f"{sources['image']} is only used by the docker backend",
            hint="add --clinicdb-backend docker",
        )
    cache = values["cache_dir"]
    function = values["partition_function"]
    return Settings(
        dsn=str(values["dsn"]) if values["backend"] == "external" else None,
        image=values["image"],  # type: ignore[arg-type]
        allow_external_dev_seed=bool(values["allow_external_dev_seed"]),
        reuse=bool(values["reuse"]),
        dev_seed_tables=values["dev_seed_tables"],  # type: ignore[arg-type]
        rebuild=bool(values["rebuild"]),
        keep_templates=int(str(values["keep_templates"])),
        keep_failed=bool(values["keep_failed"]),
        recycle_clones=bool(values["recycle_clones"]),
        timings=bool(values["timings"]),
        connection_wait=int(str(values["connection_wait"])),
        build_timeout=int(str(values["build_timeout"])),
        check=bool(values["check"]),
        dev_seed=bool(values["dev_seed"]),
        dev_seed_mode=str(values["dev_seed_mode"]),
        environment=str(values["environment"]),
        backend=str(values["backend"]),
        pg_bin=values["pg_bin"],  # type: ignore[arg-type]
        pg_version=values["pg_version"],  # type: ignore[arg-type]
        migrations=values["migrations"],  # type: ignore[arg-type]
        seeds=values["seeds"],  # type: ignore[arg-type]
        system_seed=values["system_seed"],  # type: ignore[arg-type]
        dev_seed_file=values["dev_seed_file"],  # type: ignore[arg-type]
        bootstrap=values["bootstrap"] or (),  # type: ignore[arg-type]
        schemas=values["schemas"],  # type: ignore[arg-type]
        audit_tables=values["audit_tables"],  # type: ignore[arg-type]
        partition_function=None if function is None else str(function),
        run_as=values["run_as"],  # type: ignore[arg-type]
        tenant_role=values["tenant_role"],  # type: ignore[arg-type]
        tenant_setting=values["tenant_setting"],  # type: ignore[arg-type]
        tenants=values["tenants"],  # type: ignore[arg-type]
        tenant_shared=values["tenant_shared"] or (),  # type: ignore[arg-type]
        cache_dir=cache if isinstance(cache, Path) else default_cache_dir(),
        rootdir=rootdir,
        sources=sources,
    )
