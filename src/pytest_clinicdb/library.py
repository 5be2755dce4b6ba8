"""Entry points for a ``conftest.py`` that brings its own pieces into the fixture chain.

``existing_server(dsn)`` returns what ``clinic_postgres`` yields, for a server
you run yourself; ``build_template(server, ...)`` returns what
``_clinicdb_template`` yields, built from inputs of your choice.  Everything
else in the chain then uses them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .server import ServerInfo
    from .templates import TemplateInfo


def existing_server(dsn: str, *, pg_version: int | None = None) -> ServerInfo:
    """A server someone else runs, as ``clinic_postgres`` would give it.

    Its role needs ``CREATEDB`` (or superuser).  The plugin creates only its
    own marked ``clinicdb_*`` databases there and drops its clones when the
    run ends; templates are kept for the next run, like on any kept server.
    """
    from .server.external import connect_external

    return connect_external(dsn, pg_version=pg_version)


def build_template(
    server: ServerInfo,
    *,
    migrations: Sequence[Path | str],
    system_seed: Path | str | None = None,
    bootstrap: Sequence[Path | str] = (),
    rebuild: bool = False,
) -> TemplateInfo:
    """A template on ``server`` built from these inputs (what ``_clinicdb_template`` yields).

    Content-keyed like the plugin's own: built once, reused while no input byte
    changes.  Use it in an override of ``_clinicdb_template``::

        @pytest.fixture(scope="session")
        def _clinicdb_template(clinic_postgres):
            return pytest_clinicdb.build_template(clinic_postgres, migrations=["db/migrations"])
    """
    import os

    from .config import default_cache_dir, resolve
    from .project import Project
    from .runs import RunRef
    from .templates import Builder

    given: dict[str, object] = {
        "migrations": [str(m) for m in migrations],
        "system_seed": "none" if system_seed is None else str(system_seed),
        "bootstrap": [str(b) for b in bootstrap] or None,
        "rebuild": rebuild,
        "cache_dir": str(default_cache_dir()),
    }
    settings = resolve(given.get, lambda name: None, env={}, rootdir=Path(os.getcwd()))
    return Builder(Project(settings), settings, RunRef.new()).base(server)
