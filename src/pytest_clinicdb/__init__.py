"""pytest-clinicdb: PostgreSQL test databases for clinic-style applications.

The pytest plugin is registered through the ``pytest11`` entry point
``clinicdb``; this package also exposes the library it is built on.  Public
names are resolved on first use (PEP 562): ``import pytest_clinicdb`` costs
almost nothing, and psycopg is imported only when a database is needed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: public name -> module that defines it
_EXPORTS = {
    "assert_audit_partitions_cover": "asserts",
    "assert_audit_partitions_cover_horizon": "asserts",
    "assert_audited": "asserts",
    "assert_audited_timestamps_covered": "asserts",
    "assert_migrations_match_lock": "asserts",
    "assert_no_rows_in_default_partition": "asserts",
    "assert_seed_idempotent": "asserts",
    "assert_seed_refuses": "asserts",
    "assert_seed_snapshot": "asserts",
    "assert_triggers_enabled": "asserts",
    "assert_tenant_isolation": "asserts",
    "acting_as": "tenants",
    "acting_as_async": "tenants",
    "check_tenant_isolation": "tenants",
    "probe_tenant_isolation": "tenants",
    "IsolationReport": "tenants",
    "Finding": "checks",
    "seed_snapshot": "checks",
    "write_lock": "lockfile",
    "BinariesNotFoundError": "errors",
    "ClinicDBError": "errors",
    "ConfigError": "errors",
    "DevSeedRefusedError": "errors",
    "ExtensionsMissingError": "errors",
    "MigrationDiscoveryError": "errors",
    "MigrationEditedError": "errors",
    "MigrationError": "errors",
    "SeedError": "errors",
    "ServerStartError": "errors",
    "SQLFileError": "errors",
    "SQLSyntaxUnsupportedError": "errors",
    "TemplateBuildError": "errors",
    "Migration": "migrations",
    "apply_migrations": "migrations",
    "discover": "migrations",
    "PartitionMap": "partitions",
    "read_partitions": "partitions",
    "Notice": "seeds",
    "capture_notices": "seeds",
    "load_dev_seed": "seeds",
    "load_seed": "seeds",
    "ServerInfo": "server",
    "mask_dsn": "server",
    "register_backend": "server",
    "existing_server": "library",
    "build_template": "library",
    "TemplateInfo": "templates",
}

__all__ = [
    "BinariesNotFoundError",
    "ClinicDBError",
    "ConfigError",
    "DevSeedRefusedError",
    "ExtensionsMissingError",
    "Finding",
    "IsolationReport",
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
    "TemplateInfo",
    "__version__",
    "acting_as",
    "acting_as_async",
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
    "assert_tenant_isolation",
    "assert_triggers_enabled",
    "build_template",
    "capture_notices",
    "check_tenant_isolation",
    "discover",
    "existing_server",
    "load_dev_seed",
    "load_seed",
    "mask_dsn",
    "probe_tenant_isolation",
    "read_partitions",
    "register_backend",
    "seed_snapshot",
    "write_lock",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pytest_clinicdb' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:
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
        assert_tenant_isolation,
        assert_triggers_enabled,
    )
    from .checks import Finding, seed_snapshot
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
    from .library import build_template, existing_server
    from .lockfile import write_lock
    from .migrations import Migration, apply_migrations, discover
    from .partitions import PartitionMap, read_partitions
    from .seeds import Notice, capture_notices, load_dev_seed, load_seed
    from .server import ServerInfo, mask_dsn, register_backend
    from .templates import TemplateInfo
    from .tenants import (
        IsolationReport,
        acting_as,
        acting_as_async,
        check_tenant_isolation,
        probe_tenant_isolation,
    )
