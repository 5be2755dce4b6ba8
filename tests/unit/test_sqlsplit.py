from __future__ import annotations

from pytest_clinicdb._sqlsplit import line_col, split_sql


def texts(sql: str) -> list[str]:
    return [s.text for s in split_sql(sql).statements]


def test_splits_on_semicolons_and_records_start_lines():
    sql = "-- header\nCREATE TABLE a (id int);\n\n  INSERT INTO a VALUES (1);\n"
    stmts = split_sql(sql).statements
    assert [s.text for s in stmts] == ["CREATE TABLE a (id int);", "INSERT INTO a VALUES (1);"]
    assert [(s.line, s.column) for s in stmts] == [(2, 1), (4, 3)]


def test_semicolons_inside_strings_identifiers_and_comments_do_not_split():
    sql = (
        "SELECT 'a;b', E'it\\'s;', \"odd;name\" FROM t; /* x; /* nested; */ y; */ SELECT 2;"
        " -- trailing; comment\n"
    )
    assert texts(sql) == [
        "SELECT 'a;b', E'it\\'s;', \"odd;name\" FROM t;",
        "SELECT 2;",
    ]


def test_doubled_quotes_and_standard_strings():
    assert texts("SELECT 'it''s; fine'; SELECT 'c:\\';") == [
        "SELECT 'it''s; fine';",
        "SELECT 'c:\\';",
    ]


def test_dollar_quoted_bodies_keep_their_semicolons():
    sql = (
        "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $body$\nBEGIN\n  RETURN 1;\nEND;\n$body$;\n"
        "DO $$ BEGIN PERFORM 1; END $$;\nSELECT $1;"
    )
    result = texts(sql)
    assert len(result) == 3
    assert result[0].endswith("$body$;")
    assert result[1] == "DO $$ BEGIN PERFORM 1; END $$;"


def test_begin_atomic_bodies_are_one_statement():
    sql = (
        "CREATE OR REPLACE FUNCTION g(a int) RETURNS int LANGUAGE sql\n"
        "BEGIN ATOMIC\n  SELECT a + 1;\n  SELECT CASE WHEN a > 0 THEN 1 ELSE 2 END;\nEND;\nSELECT 3;"
    )
    assert len(texts(sql)) == 2


def test_comment_only_text_has_no_statement():
    assert texts("-- nothing\n/* still nothing */\n;;\n") == []


def test_psql_meta_commands_are_reported_with_their_line():
    result = split_sql("SELECT 1;\n\\i other.sql\n")
    assert [(m.text, m.line) for m in result.meta_commands] == [("\\i other.sql", 2)]


def test_line_col_is_one_based():
    assert line_col("ab\ncd", 0) == (1, 1)
    assert line_col("ab\ncd", 4) == (2, 2)
