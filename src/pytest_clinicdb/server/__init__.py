"""Server backends behind one small interface: each yields a :class:`ServerInfo`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from psycopg.conninfo import conninfo_to_dict, make_conninfo


@dataclass(frozen=True)
class ServerInfo:
    """A running PostgreSQL server the plugin can use.

    ``dsn`` is the connection string of the maintenance database; use
    :meth:`dsn_for` for another database.  The password never appears in
    ``repr()`` or :attr:`masked_dsn`.
    """

    backend: str
    host: str
    port: int
    user: str
    version: str
    major: int
    password: str | None = field(default=None, repr=False)
    dbname: str = "postgres"
    data_dir: Path | None = None
    log_path: Path | None = None
    binaries: str = ""
    tcp_port: int | None = None
    superuser: bool = True
    #: Further connection parameters of a given DSN (sslmode, options …), kept for every database.
    extra: tuple[tuple[str, str], ...] = ()

    @property
    def dsn(self) -> str:
        return self.dsn_for(self.dbname)

    def dsn_for(self, dbname: str) -> str:
        params: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "dbname": dbname,
        }
        if self.password:
            params["password"] = self.password
        params.update(self.extra)
        return make_conninfo("", **params)

    @property
    def masked_dsn(self) -> str:
        return mask_dsn(self.dsn)

    def __repr__(self) -> str:
        return (
            f"ServerInfo(backend={self.backend!r}, version={self.version!r}, "
            f"dsn={self.masked_dsn!r}, data_dir={str(self.data_dir) if self.data_dir else None!r}, "
            f"log_path={str(self.log_path) if self.log_path else None!r})"
        )

    __str__ = __repr__


def mask_dsn(dsn: str) -> str:
    """``dsn`` with any password replaced by ``***`` (conninfo or URL form)."""
    try:
        params = conninfo_to_dict(dsn)
    except Exception:
        import re

        return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", re.sub(r"(password=)\S+", r"\1***", dsn))
    if params.get("password"):
        params["password"] = "***"
    return make_conninfo("", **params)
