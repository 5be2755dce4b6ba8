from __future__ import annotations

import os
from pathlib import Path

import pytest

from pytest_clinicdb.errors import MigrationDiscoveryError, SQLSyntaxUnsupportedError
from pytest_clinicdb.migrations import discover, discovery_notes, required_extensions


def write(directory: Path, name: str, text: str | bytes = "SELECT 1;") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def test_orders_by_numeric_prefix_not_by_text(tmp_path):
    for name in ("10_ten.sql", "9_nine.sql", "100_hundred.sql", "011_eleven.sql"):
        write(tmp_path, name)
    assert [m.name for m in discover(tmp_path)] == [
        "9_nine.sql",
        "10_ten.sql",
        "011_eleven.sql",
        "100_hundred.sql",
    ]


def test_duplicate_numbers_are_refused_naming_both_files(tmp_path):
    write(tmp_path, "001_a.sql")
    write(tmp_path, "1_b.sql")
    with pytest.raises(MigrationDiscoveryError, match=r"001_a.sql and 1_b.sql share the number 1"):
        discover(tmp_path)


def test_missing_directory_names_the_option(tmp_path):
    with pytest.raises(MigrationDiscoveryError) as info:
        discover(tmp_path / "nope")
    assert "does not exist" in str(info.value)
    assert "--clinicdb-migrations" in str(info.value)


def test_files_that_are_not_migrations_are_skipped_with_a_note(tmp_path):
    write(tmp_path, "001_a.sql")
    write(tmp_path, "README.md", "# migrations")
    write(tmp_path, "atlas.sum", "h1:abc=")
    found = discover(tmp_path)
    assert [m.name for m in found] == ["001_a.sql"]
    assert [str(n) for n in found.notes] == [
        "README.md: skipped, not a .sql file",
        "atlas.sum: skipped, Atlas's checksum file, not a migration",
    ]
    assert discovery_notes(tmp_path) == found.notes


def test_file_without_number_is_refused(tmp_path):
    write(tmp_path, "init.sql")
    with pytest.raises(MigrationDiscoveryError, match="init.sql has no numeric prefix"):
        discover(tmp_path)


def test_non_utf8_file_is_refused_with_line(tmp_path):
    write(tmp_path, "001_a.sql", b"SELECT 1;\nSELECT '\xff';\n")
    with pytest.raises(
        SQLSyntaxUnsupportedError, match=r"001_a.sql, line 2: migration is not valid UTF-8"
    ):
        discover(tmp_path)


def test_discovery_splits_nothing(tmp_path):
    write(tmp_path, "001_a.sql", "CREATE INDEX CONCURRENTLY i ON t (a);\n\\gexec\n")
    (mig,) = discover(tmp_path)
    mig.content_bytes(), mig.checksum
    assert "plan" not in mig.file.__dict__


def test_begin_atomic_is_not_mistaken_for_begin(tmp_path):
    write(
        tmp_path,
        "001_a.sql",
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END;\n",
    )
    assert len(discover(tmp_path)[0].file.statements) == 1


def test_required_extensions_are_read_from_create_extension(tmp_path):
    write(
        tmp_path,
        "001_ext.sql",
        'CREATE EXTENSION IF NOT EXISTS citext;\ncreate extension "pg_trgm";\n',
    )
    write(tmp_path, "002_more.sql", "CREATE EXTENSION citext;\nSELECT 1;\n")
    assert required_extensions(discover(tmp_path)) == ["citext", "pg_trgm"]


def test_checksum_changes_with_bytes_but_not_with_line_endings(tmp_path):
    path = write(tmp_path, "001_a.sql", "SELECT 1;\nSELECT 2;\n")
    before = discover(tmp_path)[0]
    path.write_bytes(b"\xef\xbb\xbfSELECT 1;\r\nSELECT 2;\r\n")
    resaved = discover(tmp_path)[0]
    assert resaved.checksum == before.checksum == before.legacy_checksum
    assert resaved.legacy_checksum != before.legacy_checksum
    path.write_text("SELECT 1; \nSELECT 2;\n")
    assert discover(tmp_path)[0].checksum != before.checksum


# --------------------------------------------------------------------------- layouts


def names(found) -> list[str]:
    return [m.name for m in found]


def test_golang_migrate_runs_up_files_in_version_order_and_never_down_files(tmp_path):
    for n, title in [(10, "invoices"), (2, "rooms"), (1, "patients")]:
        write(tmp_path, f"{n:06d}_{title}.up.sql", f"CREATE TABLE {title} (id int);")
        write(tmp_path, f"{n:06d}_{title}.down.sql", f"DROP TABLE {title};")
    found = discover(tmp_path)
    assert found.layouts == {tmp_path: "golang-migrate"}
    assert names(found) == [
        "000001_patients.up.sql",
        "000002_rooms.up.sql",
        "000010_invoices.up.sql",
    ]
    assert [str(m.version) for m in found] == ["1", "2", "10"]
    assert [str(n) for n in found.notes] == [
        f"{tmp_path.name}: skipped 3 down migration(s) (*.down.sql): golang-migrate runs them "
        "only when migrating down"
    ]


def test_golang_migrate_duplicate_version_gets_its_tools_hint(tmp_path):
    write(tmp_path, "1_a.up.sql")
    write(tmp_path, "01_b.up.sql")
    with pytest.raises(MigrationDiscoveryError) as info:
        discover(tmp_path)
    assert str(info.value) == (
        "migrations 01_b.up.sql and 1_a.up.sql share the version 1\n"
        "  hint: golang-migrate allows one .up.sql per version; renumber the newer, unapplied "
        "one (`migrate create -seq` gives the next number)"
    )


def test_flyway_versions_locations_repeatables_and_undo(tmp_path):
    main, extra = tmp_path / "sql", tmp_path / "extra"
    write(main, "V1__patients.sql")
    write(main, "V1.1__patient_email.sql")
    write(main / "later", "V10__invoices.sql")
    write(main, "V2_1__rooms.sql")
    write(extra, "V13.1__visits.sql")
    write(extra, "V2__doctors.sql")
    write(main, "R__views.sql")
    write(extra, "R__audit_functions.sql")
    write(main, "U2__undo_doctors.sql")
    write(main, "afterMigrate.sql")
    found = discover([main, extra])
    assert found.layouts == {main: "flyway", extra: "flyway"}
    assert names(found) == [
        "V1__patients.sql",
        "V1.1__patient_email.sql",
        "V2__doctors.sql",
        "V2_1__rooms.sql",
        "V10__invoices.sql",
        "V13.1__visits.sql",
        "R__audit_functions.sql",
        "R__views.sql",
    ]
    assert [m.kind for m in found][-3:] == ["versioned", "repeatable", "repeatable"]
    assert [str(m.version) for m in found if m.version] == ["1", "1.1", "2", "2.1", "10", "13.1"]
    assert [str(n) for n in found.notes] == [
        "afterMigrate.sql: skipped, a Flyway callback: callbacks do not run here (put what it "
        "does in a repeatable R__ migration)",
        "sql: skipped 1 undo migration(s) (U…__*.sql): Flyway runs them only on undo",
    ]


def test_flyway_trailing_zeros_make_one_version(tmp_path):
    write(tmp_path, "V1__a.sql")
    write(tmp_path, "V1.0__b.sql")
    with pytest.raises(MigrationDiscoveryError) as info:
        discover(tmp_path)
    assert str(info.value).startswith(
        "migrations V1.0__b.sql and V1__a.sql share the version 1 (1.0 and 1 are one version to "
        "Flyway: trailing zeros do not count)"
    )


def test_flyway_duplicate_across_locations_names_both_paths(tmp_path):
    write(tmp_path / "a", "V3__x.sql")
    write(tmp_path / "b", "V3__y.sql")
    with pytest.raises(MigrationDiscoveryError, match=r"migrations .*a/V3__x.sql and .*b/V3__y"):
        discover([tmp_path / "a", tmp_path / "b"])


def test_flyway_script_configuration_turns_the_transaction_off(tmp_path):
    write(tmp_path, "V1__a.sql", "CREATE INDEX i ON t (a);")
    write(tmp_path, "V1__a.sql.conf", "# Flyway script config\nexecuteInTransaction=false\n")
    (mig,) = discover(tmp_path)
    assert not mig.transactional
    assert str(mig.file.outside_reason()) == "executeInTransaction=false (V1__a.sql.conf, line 2)"


def test_dbmate_runs_only_the_up_sections(tmp_path):
    write(
        tmp_path,
        "20240105093000_rooms.sql",
        "-- rooms of the clinic\n"
        "-- migrate:up\n"
        "CREATE TABLE rooms (id int);\n"
        "\n"
        "-- migrate:down\n"
        "DROP TABLE rooms;\n",
    )
    write(tmp_path, "20240101120000_patients.sql", "-- migrate:up transaction:false\nSELECT 1;\n")
    found = discover(tmp_path)
    assert found.layouts == {tmp_path: "dbmate"}
    assert names(found) == ["20240101120000_patients.sql", "20240105093000_rooms.sql"]
    patients, rooms = found
    assert [s.text for s in rooms.file.statements] == ["CREATE TABLE rooms (id int);"]
    assert [str(n) for n in rooms.notes] == [
        "20240105093000_rooms.sql, line 5: down section (lines 5-6) not run"
    ]
    assert rooms.transactional
    assert str(patients.file.outside_reason()) == (
        "dbmate transaction:false (20240101120000_patients.sql, line 1)"
    )


def test_dbmate_refuses_sql_before_the_up_section(tmp_path):
    write(tmp_path, "1_a.sql", "-- migrate:up\nSELECT 1;\n")
    write(tmp_path, "2_b.sql", "-- fine\nSELECT 2;\n-- migrate:up\nSELECT 3;\n")
    with pytest.raises(SQLSyntaxUnsupportedError) as info:
        discover(tmp_path)
    assert str(info.value).startswith("2_b.sql, line 2: SQL before '-- migrate:up'")
    (tmp_path / "2_b.sql").write_text("SELECT 2;\n")
    with pytest.raises(
        SQLSyntaxUnsupportedError, match="2_b.sql, line 1: dbmate migration without"
    ):
        discover(tmp_path)


def test_goose_runs_the_up_part_and_reads_its_annotations(tmp_path):
    write(
        tmp_path,
        "00002_touch_trigger.sql",
        "-- +goose Up\n"
        "-- +goose StatementBegin\n"
        "CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$\n"
        "BEGIN NEW.updated_at := now(); RETURN NEW; END;\n"
        "$$;\n"
        "-- +goose StatementEnd\n"
        "\n"
        "-- +goose Down\n"
        "DROP FUNCTION touch();\n",
    )
    write(
        tmp_path,
        "00010_index.sql",
        "-- +goose NO TRANSACTION\n-- +goose Up\nCREATE INDEX CONCURRENTLY i ON t (a);\n",
    )
    write(tmp_path, "00003_x.go", "package migrations")
    found = discover(tmp_path)
    assert found.layouts == {tmp_path: "goose"}
    assert names(found) == ["00002_touch_trigger.sql", "00010_index.sql"]
    trigger, index = found
    assert [s.line for s in trigger.file.statements] == [3]
    assert str(index.file.outside_reason()) == "goose NO TRANSACTION (00010_index.sql, line 1)"
    assert [str(n) for n in found.notes] == [
        "00003_x.go: skipped, a Go migration: only SQL migrations run here"
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("SELECT 1;\n", "00001_a.sql, line 1: goose migration without '-- +goose Up'"),
        ("SELECT 1;\n-- +goose Up\nSELECT 2;\n", "00001_a.sql, line 1: SQL before '-- +goose Up'"),
        (
            "-- +goose Up\n-- +goose ENVSUBST ON\nSELECT '${CLINIC}';\n",
            "00001_a.sql, line 2: '-- +goose ENVSUBST ON' is not supported",
        ),
        (
            "-- +goose Up\n-- +goose StatementBegin\nSELECT 1;\n-- +goose Down\n",
            "00001_a.sql, line 4: '-- +goose StatementBegin' without its StatementEnd",
        ),
    ],
)
def test_goose_refuses_what_goose_refuses(tmp_path, text, message):
    write(tmp_path, "00000_ok.sql", "-- +goose Up\nSELECT 0;\n")
    write(tmp_path, "00001_a.sql", text)
    with pytest.raises(SQLSyntaxUnsupportedError) as info:
        discover(tmp_path)
    assert str(info.value).startswith(message)


def test_supabase_orders_by_file_name_as_the_cli_does(tmp_path):
    folder = tmp_path / "supabase" / "migrations"
    write(folder, "20240201000000_invoices.sql")
    write(folder, "20240130_patient_phone.sql")  # 8 digits: a number would sort it first
    write(folder, "20240101120000_patients.sql")
    write(folder, "20240130093000_rooms.sql")
    write(folder, "notes.sql")
    found = discover(folder)
    assert found.layouts == {folder: "supabase"}
    assert names(found) == [
        "20240101120000_patients.sql",
        "20240130093000_rooms.sql",
        "20240130_patient_phone.sql",
        "20240201000000_invoices.sql",
    ]
    assert [str(n) for n in found[2].notes] == [
        "20240130_patient_phone.sql: version 20240130 has 8 digits, not 14: ordered by file "
        "name as the Supabase CLI does"
    ]
    assert [str(n) for n in found.notes] == [
        "notes.sql: skipped, not a Supabase name (<timestamp>_name.sql); the CLI skips it too"
    ]


def test_a_folder_mixing_tools_is_refused(tmp_path):
    write(tmp_path, "V1__a.sql")
    write(tmp_path, "2_b.up.sql")
    with pytest.raises(MigrationDiscoveryError) as info:
        discover(tmp_path)
    assert str(info.value).startswith(
        f"migrations directory {tmp_path} mixes the files of several tools: "
        "golang-migrate (2_b.up.sql), flyway (V1__a.sql)"
    )


def test_folders_ordered_by_name_and_by_number_cannot_be_merged(tmp_path):
    write(tmp_path / "a", "1_a.sql")
    write(tmp_path / "supabase" / "migrations", "20240101000000_b.sql")
    with pytest.raises(MigrationDiscoveryError, match="order files differently"):
        discover([tmp_path / "a", tmp_path / "supabase" / "migrations"])


def test_several_numbered_folders_merge_by_number(tmp_path):
    write(tmp_path / "core", "1_a.sql")
    write(tmp_path / "core", "3_c.sql")
    write(tmp_path / "extra", "2_b.sql")
    assert names(discover([tmp_path / "core", tmp_path / "extra"])) == [
        "1_a.sql",
        "2_b.sql",
        "3_c.sql",
    ]


def test_a_file_name_that_is_not_utf8_gets_a_printable_ledger_name(tmp_path):
    path = Path(os.fsdecode(bytes(tmp_path) + b"/001_caf\xe9.sql"))
    path.write_text("SELECT 1;")
    (mig,) = discover(tmp_path)
    assert mig.name == "001_caf\\xe9.sql"
    mig.name.encode("utf-8")
    assert mig.path == path  # still the real file
