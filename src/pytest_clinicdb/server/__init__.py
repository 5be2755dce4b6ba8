"""Where the PostgreSQL server comes from: backends behind one small interface.

A backend turns the run's settings into a running server (:class:`ServerInfo`)
and knows how to let go of it.  Three ship with the plugin — ``embedded``
(local binaries), ``docker`` (testcontainers) and ``external`` (a DSN) — and
more can be registered with :func:`register_backend` (the plugin's own tests
register a fake container runtime this way)::

    class MyBackend:
        name = "mine"
        def __init__(self, settings, project): ...
        def describe(self) -> str: ...                 # header line, starts nothing
        def start(self, run) -> ServerInfo: ...        # start or attach; run.record_server(...)
        @classmethod
        def died(cls, info) -> ServerDiedError | None: ...
        @classmethod
        def release(cls, state, run, *, keep) -> None: ...   # the run ended
        @classmethod
        def reap(cls, state, run_id) -> None: ...            # the run was killed

``release`` and ``reap`` get only the state the backend recorded in the run
directory: they work in a later process, without settings or binaries.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:
    from ..config import Settings
    from ..errors import ServerDiedError
    from ..project import Project
    from ..runs import Run, RunRef


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
    #: Whether the server belongs to this project alone (roles created by migrations stay in it).
    hermetic: bool = False

    @property
    def dsn(self) -> str:
        return self.dsn_for(self.dbname)

    def dsn_for(self, dbname: str) -> str:
        from psycopg.conninfo import make_conninfo

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
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    try:
        params = conninfo_to_dict(dsn)
    except Exception:
        return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", re.sub(r"(password=)\S+", r"\1***", dsn))
    if params.get("password"):
        params["password"] = "***"
    return make_conninfo("", **params)


class Backend(Protocol):
    """What the plugin asks of a server backend (see the module docstring)."""

    name: ClassVar[str]

    def describe(self) -> str: ...

    def start(self, run: Run) -> ServerInfo: ...

    @classmethod
    def died(cls, info: ServerInfo) -> ServerDiedError | None: ...

    @classmethod
    def release(cls, state: dict[str, Any], run: RunRef, *, keep: bool) -> None: ...

    @classmethod
    def reap(cls, state: dict[str, Any], run_id: str) -> None: ...


class BackendFactory(Protocol):
    name: ClassVar[str]

    def __call__(self, settings: Settings, project: Project) -> Backend: ...

    def died(self, info: ServerInfo) -> ServerDiedError | None: ...

    def release(self, state: dict[str, Any], run: RunRef, *, keep: bool) -> None: ...

    def reap(self, state: dict[str, Any], run_id: str) -> None: ...


#: Built-in backends, imported only when used (testcontainers is optional).
_BUILTIN = {
    "embedded": "pytest_clinicdb.server.embedded:EmbeddedBackend",
    "docker": "pytest_clinicdb.server.docker:DockerBackend",
    "external": "pytest_clinicdb.server.external:ExternalBackend",
}
_REGISTERED: dict[str, Any] = {}


def register_backend(name: str, factory: Any) -> None:
    """Make ``--clinicdb-backend NAME`` use ``factory`` (a class following :class:`Backend`)."""
    _REGISTERED[name] = factory


def backend_names() -> tuple[str, ...]:
    return tuple(dict.fromkeys([*_BUILTIN, *_REGISTERED]))


def backend_class(name: str) -> Any:
    """The backend class registered under ``name`` (KeyError if there is none)."""
    if name in _REGISTERED:
        return _REGISTERED[name]
    module, _, attr = _BUILTIN[name].partition(":")
    return getattr(importlib.import_module(module), attr)


def died(info: ServerInfo) -> ServerDiedError | None:
    """After a connection error: the server's death (with what is known), or None if it lives."""
    try:
        cls = backend_class(info.backend)
    except KeyError:
        cls = backend_class("external")
    result: ServerDiedError | None = cls.died(info)
    return result
