"""Errors cross process boundaries (xdist sends them from workers): each one pickles whole."""

from __future__ import annotations

import inspect
import pickle
from pathlib import Path

import pytest

from pytest_clinicdb import errors

EXAMPLES = [
    errors.ClinicDBError("plain", hint="do this"),
    errors.ConfigError("--clinicdb-x: bad", hint="use y"),
    errors.InputNotFoundError("folder f does not exist"),
    errors.BinariesNotFoundError("none found"),
    errors.ServerStartError("did not start", log_tail="FATAL: no", hint="look"),
    errors.ServerDiedError("died", log_tail="LOG: killed"),
    errors.ConnectionBudgetError("too many", hint="wait"),
    errors.MigrationDiscoveryError("two files share 3"),
    errors.MigrationEditedError(["001_a.sql"]),
    errors.ExtensionsMissingError(["vector"], "needs vector", hint="install it"),
    errors.MigrationError(Path("m/001_a.sql"), 3, 7, "42601", "syntax error", detail="d"),
    errors.SeedError(Path("s/001.sql"), 1, 1, "23505", "duplicate", statement="INSERT"),
    errors.BootstrapError(Path("b/roles.sql"), 2, 1, "42710", "role exists"),
    errors.SQLFileReadError(Path("m/001_a.sql"), "permission denied"),
    errors.SQLSyntaxUnsupportedError(Path("m/001_a.sql"), 4, "VACUUM", hint="no"),
    errors.SeedNotFoundError("no seed"),
    errors.DevSeedRefusedError("refused"),
    errors.TriggersLeftDisabledError(["clinic.t.audit_t"]),
    errors.PartitionError("not partitioned"),
    errors.CheckError("give both"),
    errors.SQLFileError(Path("f.sql"), 1, 2, None, "failed"),
    errors.BuildTimeoutError(
        "migration 005_x.sql (5/9)", 5.2, where="migration 005_x.sql, line 3", blockers=["pid 1"]
    ),
    errors.PsqlMetaCommandError(Path("f.sql"), [(3, "\\gexec", "use a DO block")]),
    errors.MigrationIncompleteError({"003_idx.sql": "2 of 3 statements"}),
    errors.MigrationPartlyAppliedError(
        Path("m/003_idx.sql"), 5, 1, "42P07", "exists", statements_done=1, statements_total=3
    ),
]


def test_every_error_class_has_an_example():
    classes = {
        cls
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, errors.ClinicDBError) and cls.__module__ == errors.__name__
    }
    covered = {type(e) for e in EXAMPLES} | {errors.TemplateBuildError}
    assert classes - covered == set(), "add an example of each new error class"


@pytest.mark.parametrize("error", EXAMPLES, ids=lambda e: type(e).__name__)
def test_an_error_round_trips_through_pickle(error):
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is type(error)
    assert str(again) == str(error)
    assert again.__dict__ == error.__dict__


def test_a_template_build_error_keeps_its_cause():
    cause = errors.MigrationError(Path("m/002_b.sql"), 9, 1, "42P01", 'relation "x" does not exist')
    error = errors.TemplateBuildError("clinicdb_tpl_0123", cause)
    again = pickle.loads(pickle.dumps(error))
    assert str(again) == str(cause)  # the user reads the migration's own message
    assert again.template == "clinicdb_tpl_0123"
    assert isinstance(again.cause, errors.MigrationError) and again.cause.line == 9
