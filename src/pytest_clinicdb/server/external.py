"""The external backend: a server someone else runs, given by DSN (no pytest import).

The plugin starts and stops nothing here.  It creates only databases named
``clinicdb_*`` that carry its marker, and drops only those (garbage collection
checks both).  It works with a non-superuser role that has ``CREATEDB``: the
role owns every database it creates, which is all that cloning, marking and
dropping need.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from ..errors import ConfigError, ServerStartError
from . import ServerInfo, mask_dsn

#: Connection parameters that name the database or the credentials; the rest are kept.
_CORE = {"host", "port", "user", "password", "dbname"}


def connect_external(dsn: str, *, pg_version: int | None = None) -> ServerInfo:
    """Check that ``dsn`` reaches a usable server and describe it."""
    try:
        params: dict[str, Any] = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as exc:
        raise ConfigError(
            f"--clinicdb-dsn is not a valid connection string: {exc}",
            hint="e.g. postgresql://user:password@host:5432/postgres",
        ) from None
    masked = mask_dsn(dsn)
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
