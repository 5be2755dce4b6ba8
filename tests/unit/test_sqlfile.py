"""Reading SQL files as psql would, without a server: meta-commands, includes, checksums."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from pytest_clinicdb.errors import PsqlMetaCommandError, SQLSyntaxUnsupportedError
from pytest_clinicdb.sqlfile import read_sql_file


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def test_reading_does_not_split_until_statements_are_asked_for(tmp_path):
    f = read_sql_file(write(tmp_path / "seed.sql", "SELECT 1;\nSELECT 2;\n"))
    f.content_bytes(), f.checksum, f.legacy_checksum, f.includes
    assert "plan" not in f.__dict__
    assert len(f.statements) == 2
    assert "plan" in f.__dict__


def test_harmless_meta_commands_are_ignored_with_a_note(tmp_path):
    path = write(
        tmp_path / "001_base.sql",
        "\\restrict Kq8Zr1\n"
        "\\set ON_ERROR_STOP on\n"
        "\\set VERBOSITY verbose\n"
        "\\set unused 42\n"
        "\\echo loading the clinic schema\n"
        "\\timing on\n"
        "CREATE TABLE clinic_rooms (id int);\n"
        "\\unrestrict Kq8Zr1\n",
    )
    f = read_sql_file(path, what="migration")
    assert [s.first_word for s in f.statements] == ["CREATE"]
    assert [str(n) for n in f.notes] == [
        "001_base.sql, line 1: \\restrict ignored: pg_dump's restrict key, for psql only",
        "001_base.sql, line 2: \\set ignored: the runner always stops at the first error",
        "001_base.sql, line 3: \\set ignored: a psql client setting",
        "001_base.sql, line 4: \\set ignored: psql variable unused is never used",
        "001_base.sql, line 5: \\echo ignored: psql prints its text; nothing runs",
        "001_base.sql, line 6: \\timing ignored: a psql display setting",
        "001_base.sql, line 8: \\unrestrict ignored: pg_dump's restrict key, for psql only",
    ]


def test_other_meta_commands_are_refused_all_at_once_each_with_its_hint(tmp_path):
    path = write(
        tmp_path / "002_rooms.sql",
        "\\connect clinic\n"
        "\\set owner clinic_owner\n"
        "CREATE TABLE rooms (id int);\n"
        "ALTER TABLE rooms OWNER TO :owner;\n"
        "SELECT format('GRANT SELECT ON %I TO nurse', t) FROM unnest('{rooms}'::text[]) t \\gexec\n"
        "\\copy rooms FROM 'rooms.csv'\n",
    )
    f = read_sql_file(path, what="migration")
    with pytest.raises(PsqlMetaCommandError) as info:
        f.statements  # noqa: B018
    err = info.value
    assert [(line, cmd) for line, cmd, _ in err.commands] == [
        (1, "\\connect"),
        (2, "\\set"),
        (5, "\\gexec"),
        (6, "\\copy"),
    ]
    assert err.line == 1
    assert str(err) == (
        "002_rooms.sql, line 1: 4 psql meta-commands are not supported:\n"
        "    line 1: \\connect — the build runs every file on the database it builds; remove it "
        "(SQL for another database belongs to that database's own set-up)\n"
        "    line 2: \\set — psql variables are not expanded here (:owner on line 4); write the "
        "value into the SQL, or use a custom setting: set_config('app.x', …) and "
        "current_setting('app.x')\n"
        "    line 5: \\gexec — psql runs each value the query returns as a statement; write "
        "those statements out, or run them from a DO block with EXECUTE\n"
        "    line 6: \\copy — \\copy reads a file on psql's side; put the rows inline with "
        "COPY … FROM stdin (as pg_dump --data-only writes them) or as INSERT statements\n"
        f"  file: {path}"
    )


def test_a_single_refused_meta_command_reads_as_one_sentence(tmp_path):
    path = write(tmp_path / "s.sql", "SELECT 1;\n\\if :is_dev\nSELECT 2;\n\\endif\n")
    with pytest.raises(PsqlMetaCommandError) as info:
        read_sql_file(path).statements  # noqa: B018
    assert str(info.value).splitlines()[0] == (
        "s.sql, line 2: 2 psql meta-commands are not supported:"
    )
    path.write_text("SELECT 1 \\gset\n")
    with pytest.raises(PsqlMetaCommandError) as info:
        read_sql_file(path).statements  # noqa: B018
    assert str(info.value) == (
        "s.sql, line 1: psql meta-command \\gset is not supported\n"
        f"  file: {path}\n"
        "  hint: psql stores the result in psql variables, which do not exist here; use a DO "
        "block (SELECT … INTO a variable) or a CTE"
    )


def test_include_runs_the_included_statements_in_place(tmp_path):
    write(
        tmp_path / "functions" / "audit.sql",
        "CREATE FUNCTION a() RETURNS int AS 'SELECT 1' LANGUAGE sql;\n",
    )
    write(tmp_path / "migrations" / "helpers" / "rooms.sql", "CREATE TABLE rooms (id int);\n")
    main = write(
        tmp_path / "migrations" / "001_base.sql",
        "CREATE SCHEMA clinic;\n\\ir helpers/rooms.sql\n\\i functions/audit.sql\nSELECT 1;\n",
    )
    f = read_sql_file(main, what="migration")
    stmts = f.statements
    assert [(s.first_word, s.line, s.path and s.path.name) for s in stmts] == [
        ("CREATE", 1, None),
        ("CREATE", 1, "rooms.sql"),
        ("CREATE", 1, "audit.sql"),  # \i also looks in the folders above
        ("SELECT", 4, None),
    ]
    assert [i.path.name for i in f.includes] == ["rooms.sql", "audit.sql"]


def test_included_files_count_in_content_and_checksum(tmp_path):
    inc = write(tmp_path / "views.sql", "CREATE VIEW v AS SELECT 1;\n")
    main = write(tmp_path / "001_views.sql", "\\ir views.sql\n")
    before = read_sql_file(main)
    assert before.content_bytes().startswith(b"\\ir views.sql\n")
    assert b"CREATE VIEW v AS SELECT 1;" in before.content_bytes()
    inc.write_text("CREATE VIEW v AS SELECT 2;\n")
    after = read_sql_file(main)
    assert after.content_bytes() != before.content_bytes()
    assert after.checksum != before.checksum
    assert after.legacy_checksum == before.legacy_checksum  # the raw bytes of the file itself


def test_missing_include_and_include_cycle_are_refused_with_the_line(tmp_path):
    main = write(tmp_path / "a.sql", "SELECT 1;\n\\ir nowhere.sql\n")
    with pytest.raises(SQLSyntaxUnsupportedError) as info:
        read_sql_file(main).statements  # noqa: B018
    assert str(info.value).startswith(
        f"a.sql, line 2: \\ir nowhere.sql: no such file (looked in {tmp_path})"
    )
    write(tmp_path / "b.sql", "\\ir a.sql\n")
    main.write_text("\\ir b.sql\n")
    with pytest.raises(SQLSyntaxUnsupportedError, match="b.sql, line 1: \\\\ir a.sql includes a"):
        read_sql_file(main).statements  # noqa: B018


def test_crlf_and_bom_do_not_change_the_checksum(tmp_path):
    lf = "-- rooms\nCREATE TABLE rooms (id int);\r\n"[:-2] + "\n"
    a = read_sql_file(write(tmp_path / "lf.sql", lf.encode()))
    b = read_sql_file(write(tmp_path / "crlf.sql", lf.replace("\n", "\r\n").encode()))
    c = read_sql_file(write(tmp_path / "bom.sql", b"\xef\xbb\xbf" + lf.encode()))
    assert a.checksum == b.checksum == c.checksum
    assert a.checksum == a.legacy_checksum == hashlib.sha256(lf.encode()).hexdigest()
    assert b.legacy_checksum != a.legacy_checksum
    assert [s.line for s in b.statements] == [2]
    assert c.statements[0].column == 1  # the BOM is not a character of the file


def test_transaction_control_is_refused_but_a_wrapping_begin_commit_is_dropped(tmp_path):
    path = write(tmp_path / "m.sql", "BEGIN;\nCREATE TABLE t (a int);\nCOMMIT;\n")
    f = read_sql_file(path, what="migration")
    assert [s.first_word for s in f.statements] == ["CREATE"]
    assert [str(n) for n in f.notes] == [
        "m.sql, line 1: BEGIN … COMMIT (line 3) around the whole file dropped: the migration "
        "runs in a transaction of its own"
    ]
    path.write_text("CREATE TABLE t (a int);\nCOMMIT;\nCREATE TABLE u (a int);\n")
    with pytest.raises(SQLSyntaxUnsupportedError) as info:
        read_sql_file(path, what="migration").statements  # noqa: B018
    assert info.value.line == 2
    assert "COMMIT commits in the middle of the file" in str(info.value)
    assert "-- clinicdb:no-transaction" in str(info.value)


@pytest.mark.parametrize(
    ("sql", "what"),
    [
        ("CREATE INDEX CONCURRENTLY i ON t (a);", "CREATE INDEX CONCURRENTLY"),
        ("create unique index concurrently if not exists i on t (a);", "CREATE INDEX CONCURRENTLY"),
        ("DROP INDEX CONCURRENTLY IF EXISTS i;", "DROP INDEX CONCURRENTLY"),
        ("VACUUM (ANALYZE) t;", "VACUUM"),
        ("ALTER SYSTEM SET work_mem = '8MB';", "ALTER SYSTEM"),
        ("CREATE DATABASE reports;", "CREATE DATABASE"),
        ("REINDEX TABLE CONCURRENTLY t;", "REINDEX CONCURRENTLY"),
        ("ALTER TABLE p DETACH PARTITION p1 CONCURRENTLY;", "DETACH PARTITION … CONCURRENTLY"),
    ],
)
def test_statements_that_need_to_run_outside_a_transaction_are_found(tmp_path, sql, what):
    path = write(tmp_path / "m.sql", f"SELECT 1;\n/* why */ {sql}\n")
    f = read_sql_file(path, what="migration")
    assert not f.transactional
    reason = f.outside_reason()
    assert reason is not None
    assert (reason.what, reason.line, reason.kind) == (what, 2, "statement")


def test_plain_statements_stay_transactional_and_the_directive_opts_out(tmp_path):
    path = write(tmp_path / "m.sql", "CREATE INDEX i ON t (a);\nALTER TYPE s ADD VALUE 'x';\n")
    assert read_sql_file(path).transactional
    path.write_text("-- rooms index\n-- clinicdb:no-transaction\nCREATE INDEX i ON t (a);\n")
    f = read_sql_file(path)
    assert not f.transactional
    assert str(f.outside_reason()) == "-- clinicdb:no-transaction (m.sql, line 2)"
    path.write_text("CREATE INDEX i ON t (a);\n-- clinicdb:no-transaction\n")
    assert read_sql_file(path).transactional  # only among the first comment lines


def test_the_runners_own_ledger_in_a_dump_is_skipped_with_a_note(tmp_path):
    path = write(
        tmp_path / "001_baseline.sql",
        "CREATE SCHEMA clinicdb;\n"
        "ALTER SCHEMA clinicdb OWNER TO postgres;\n"
        "CREATE TABLE clinicdb.migrations (name text NOT NULL, checksum text NOT NULL);\n"
        "ALTER TABLE ONLY clinicdb.migrations ADD CONSTRAINT migrations_pkey PRIMARY KEY (name);\n"
        "COPY clinicdb.migrations (name, checksum) FROM stdin;\n"
        "001_x.sql\tabc\n"
        "\\.\n"
        "CREATE TABLE public.clinicdb_notes (id int);\n",
    )
    f = read_sql_file(path, what="migration")
    assert [s.text for s in f.statements] == ["CREATE TABLE public.clinicdb_notes (id int);"]
    assert [n.line for n in f.notes] == [1, 2, 3, 4, 5]
    assert str(f.notes[0]) == (
        "001_baseline.sql, line 1: skipped CREATE SCHEMA: the runner's own ledger (schema "
        "clinicdb) already exists"
    )


def test_empty_file_is_refused_when_split(tmp_path):
    f = read_sql_file(write(tmp_path / "001_a.sql", "-- only a comment\n"), what="migration")
    with pytest.raises(SQLSyntaxUnsupportedError, match=r"001_a.sql, line 1: migration is empty"):
        f.statements  # noqa: B018


def test_copy_to_stdout_is_refused(tmp_path):
    f = read_sql_file(write(tmp_path / "s.sql", "SELECT 1;\nCOPY t TO STDOUT;\n"), what="seed")
    with pytest.raises(SQLSyntaxUnsupportedError, match="s.sql, line 2: COPY … TO STDOUT"):
        f.statements  # noqa: B018


def test_dangling_symlink_names_its_target(tmp_path):
    link = tmp_path / "003_rooms.sql"
    link.symlink_to(tmp_path / "shared" / "rooms.sql")
    with pytest.raises(SQLSyntaxUnsupportedError) as info:
        read_sql_file(link, what="migration")
    assert str(info.value).startswith(
        f"003_rooms.sql, line 0: cannot read migration: it is a symbolic link to "
        f"{tmp_path / 'shared' / 'rooms.sql'}, which does not exist"
    )


def test_a_file_name_that_is_not_utf8_is_printable(tmp_path):
    path = Path(os.fsdecode(bytes(tmp_path) + b"/004_caf\xe9.sql"))
    path.write_text("SELECT 1;\n\\echo hi\n\\gexec\n")
    f = read_sql_file(path, what="migration")
    with pytest.raises(PsqlMetaCommandError) as info:
        f.statements  # noqa: B018
    text = str(info.value)
    text.encode("utf-8")  # printable: no lone surrogate left
    assert text.startswith("004_caf\\xe9.sql, line 3: psql meta-command \\gexec")


def test_meta_commands_of_included_files_are_listed_with_the_others(tmp_path):
    write(tmp_path / "grants.sql", "SELECT 1;\n\\gexec\n")
    main = write(tmp_path / "seed.sql", "\\connect clinic\n\\ir grants.sql\n")
    with pytest.raises(PsqlMetaCommandError) as info:
        read_sql_file(main).statements  # noqa: B018
    assert [(line, cmd) for line, cmd, _ in info.value.commands] == [
        (1, "\\connect"),
        (2, "\\gexec (in grants.sql)"),
    ]
