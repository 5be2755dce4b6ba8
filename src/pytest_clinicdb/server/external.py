"""The external backend: a server someone else runs, given by DSN (no pytest import).

The plugin starts and stops nothing here.  It creates only databases named
``clinicdb_*`` that carry its marker, and drops only those (garbage collection
checks both).  It works with a non-superuser role that has ``CREATEDB``: the
role owns every database it creates, which is all that cloning, marking and
dropping need.  Such a server is shared: roles and role settings created by
migrations are seen by every database on it (see ``Project.cluster_wide_statements``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import ConfigError, ServerDiedError, ServerStartError
from . import ServerInfo, mask_dsn

if TYPE_CHECKING:
    from ..config import Settings
    from ..project import Project
    from ..runs import Run, RunRef

#: Connection parameters that name the database or the credentials; the rest are kept.
_CORE = {"host", "port", "user", "password", "dbname"}


def connect_external(dsn: str, *, pg_version: int | None = None) -> ServerInfo:
    """Check that ``dsn`` reaches a usable server and describe it."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    masked = mask_dsn(dsn)
    try:
        params: dict[str, Any] = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as exc:
        # libpq quotes the string it could not parse, password and all.
        why = " ".join(str(exc).split()).replace(dsn, masked)
        raise ConfigError(
            f"--clinicdb-dsn is not a valid connection string: {why}",
            hint="e.g. postgresql://user:password@host:5432/postgres",
        ) from None
    try:
        with psycopg.connect(dsn, connect_timeout=10, autocommit=True) as conn:
            row = conn.execute(
                "SELECT current_setting('server_version'), current_user, current_database(), "
                "rolsuper, rolcreatedb FROM pg_roles WHERE rolname = current_user"
            ).fetchone()
            info_host = conn.info.host
            info_port = conn.info.port
    except psycopg.Error as exc:
        raise ServerStartError(
            f"cannot connect to the external server {masked}: {str(exc).strip()}",
            hint="check --clinicdb-dsn (or CLINICDB_DSN) and that the server is up",
        ) from None
    assert row is not None
    version, user, dbname, superuser, createdb = row
    major = int(str(version).split(".")[0])
    if not superuser and not createdb:
        raise ConfigError(
            f"role {user} on {masked} can neither create databases nor is it a superuser",
            hint=f"ALTER ROLE {user} CREATEDB (the plugin only creates and drops its own "
            "clinicdb_* databases)",
        )
    if pg_version is not None and pg_version != major:
        raise ConfigError(
            f"--clinicdb-pg-version asks for PostgreSQL {pg_version}, but {masked} runs {version}",
            hint="drop --clinicdb-pg-version, or point --clinicdb-dsn at a server of that version",
        )
    extra = tuple(sorted((k, str(v)) for k, v in params.items() if k not in _CORE and v))
    return ServerInfo(
        backend="external",
        host=str(params.get("host") or info_host),
        port=int(params.get("port") or info_port),
        user=str(user),
        password=params.get("password"),
        version=str(version).split()[0],
        major=major,
        dbname=str(dbname),
        binaries=f"PostgreSQL {str(version).split()[0]} at {masked} (external, role {user}"
        + (", superuser)" if superuser else ", not a superuser)"),
        superuser=bool(superuser),
        extra=extra,
    )


class ExternalBackend:
    """A server given by ``--clinicdb-dsn``: nothing to start, nothing to stop."""

    name: ClassVar[str] = "external"

    def __init__(self, settings: Settings, project: Project | None = None) -> None:
        self.dsn = settings.dsn or ""
        self.pg_version = settings.pg_version
        self.timings: dict[str, float] = {}
        self.how = "connected to the external server"

    def describe(self) -> str:
        return f"backend external, server {mask_dsn(self.dsn)}"

    def start(self, run: Run) -> ServerInfo:
        return connect_external(self.dsn, pg_version=self.pg_version)

    @classmethod
    def died(cls, info: ServerInfo) -> ServerDiedError | None:
        import psycopg

        try:
            psycopg.connect(info.dsn, connect_timeout=3).close()
        except psycopg.Error as exc:
            return ServerDiedError(
                f"lost the {info.backend} server during the session: {str(exc).strip()}",
                hint="check the server; the next run reconnects",
            )
        return None

    @classmethod
    def release(cls, state: dict[str, Any], run: RunRef, *, keep: bool) -> None:
        """Nothing was started; the run's databases were dropped by the fixtures."""

    @classmethod
    def reap(cls, state: dict[str, Any], run_id: str) -> None:
        """Nothing was started; garbage collection drops a dead run's databases."""
