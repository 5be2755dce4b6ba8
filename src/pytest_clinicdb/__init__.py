"""pytest-clinicdb: PostgreSQL test databases for the clinic application.

The pytest plugin is registered through the ``pytest11`` entry point
``clinicdb``; this package also exposes the library it is built on.
"""

from __future__ import annotations

from .asserts import (
    assert_audit_partitions_cover,
    assert_audit_partitions_cover_horizon,
    assert_audited,
    assert_audited_timestamps_covered,
    assert_migrations_match_lock,
    assert_no_rows_in_default_partition,
    assert_seed_idempotent,
    assert_seed_refuses,
    assert_seed_snapshot,
    assert_triggers_enabled,
)
from .checks import Finding, seed_snapshot, write_lock
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
from .partitions import PartitionMap, read_partitions
from .seeds import Notice, capture_notices, load_dev_seed, load_seed
from .server import ServerInfo, mask_dsn

__version__ = "0.1.0"

__all__ = [
    "BinariesNotFoundError",
    "ClinicDBError",
    "ConfigError",
    "DevSeedRefusedError",
    "ExtensionsMissingError",
    "Finding",
    "Migration",
    "MigrationDiscoveryError",
    "MigrationEditedError",
    "MigrationError",
    "Notice",
    "PartitionMap",
    "SQLFileError",
    "SQLSyntaxUnsupportedError",
    "SeedError",
    "ServerInfo",
    "ServerStartError",
    "TemplateBuildError",
    "__version__",
    "apply_migrations",
    "assert_audit_partitions_cover",
    "assert_audit_partitions_cover_horizon",
    "assert_audited",
    "assert_audited_timestamps_covered",
    "assert_migrations_match_lock",
    "assert_no_rows_in_default_partition",
    "assert_seed_idempotent",
    "assert_seed_refuses",
    "assert_seed_snapshot",
    "assert_triggers_enabled",
    "capture_notices",
    "discover",
    "load_dev_seed",
    "load_seed",
    "mask_dsn",
    "read_partitions",
    "seed_snapshot",
    "write_lock",
]
