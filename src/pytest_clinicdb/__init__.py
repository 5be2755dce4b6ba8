"""pytest-clinicdb: PostgreSQL test databases for the clinic application.

The pytest plugin is registered through the ``pytest11`` entry point
``clinicdb``; this package also exposes the library it is built on.
"""

from __future__ import annotations

from .errors import (
    BinariesNotFoundError,
    ClinicDBError,
    ConfigError,
    DevSeedRefusedError,
    ExtensionsMissingError,
    MigrationDiscoveryError,
    MigrationEditedError,
    MigrationError,
    SeedError,
    ServerStartError,
    SQLFileError,
    SQLSyntaxUnsupportedError,
    TemplateBuildError,
)
from .migrations import Migration, apply_migrations, discover
from .seeds import Notice, capture_notices, load_seed
from .server import ServerInfo, mask_dsn

__version__ = "0.1.0"

__all__ = [
    "BinariesNotFoundError",
    "ClinicDBError",
    "ConfigError",
    "DevSeedRefusedError",
    "ExtensionsMissingError",
    "Migration",
    "MigrationDiscoveryError",
    "MigrationEditedError",
    "MigrationError",
    "Notice",
    "SQLFileError",
    "SQLSyntaxUnsupportedError",
    "SeedError",
    "ServerInfo",
    "ServerStartError",
    "TemplateBuildError",
    "__version__",
    "apply_migrations",
    "capture_notices",
    "discover",
    "load_seed",
    "mask_dsn",
]
