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


def test_semicolons_inside_parentheses_do_not_split():
    # psql counts parentheses too: a rule's action list is one statement.
    sql = (
        "CREATE RULE log_visit AS ON INSERT TO clinic.visits DO ALSO (\n"
        "  INSERT INTO clinic.visit_log VALUES (NEW.id);\n"
        "  UPDATE clinic.stats SET visits = visits + 1;\n"
        ");\n"
        "SELECT 1;"
    )
    stmts = split_sql(sql).statements
    assert [s.line for s in stmts] == [1, 5]
    assert stmts[0].text.endswith("visits + 1;\n);")


def test_unbalanced_closing_parenthesis_does_not_swallow_the_file():
    assert texts("SELECT 1);\nSELECT 2;") == ["SELECT 1);", "SELECT 2;"]


def test_meta_command_after_a_statement_on_the_same_line_is_found():
    result = split_sql("SELECT format('SELECT %s', 1) \\gexec\nSELECT 2;\n")
    assert [(m.name, m.line, m.in_statement) for m in result.meta_commands] == [
        ("\\gexec", 1, True)
    ]
    # psql would run the meta-command; it never reaches the server as SQL
    assert "\\gexec" not in result.statements[0].text


def test_meta_command_inside_a_statement_is_blanked_keeping_offsets():
    result = split_sql("SELECT 1,\n\\echo hello\n  2;\n")
    (stmt,) = result.statements
    assert stmt.text == "SELECT 1,\n" + " " * len("\\echo hello") + "\n  2;"
    assert result.text_between(0, stmt.end) == stmt.text


def test_backslashes_inside_strings_are_not_meta_commands():
    result = split_sql("SELECT 'C:\\temp', E'\\\\i x', $$\n\\i y\n$$;\n")
    assert result.meta_commands == []
    assert len(result.statements) == 1


def test_copy_from_stdin_takes_its_rows_up_to_backslash_dot():
    sql = (
        "SET search_path = '';\n"
        "COPY clinic.patients (id, name) FROM stdin;\n"
        "1\tAnn; not a statement\n"
        "2\t\\N\n"
        "\\.\n"
        "COPY clinic.empty (id) FROM stdin;\n"
        "\\.\n"
        "SELECT 3;\n"
    )
    stmts = split_sql(sql).statements
    assert [(s.first_word, s.line, s.copy_data, s.copy_line) for s in stmts] == [
        ("SET", 1, None, 0),
        ("COPY", 2, "1\tAnn; not a statement\n2\t\\N\n", 3),
        ("COPY", 6, "", 7),
        ("SELECT", 8, None, 0),
    ]


def test_copy_rows_with_crlf_line_ends_stop_at_backslash_dot():
    stmts = split_sql("COPY t FROM stdin;\r\n1\r\n\\.\r\nSELECT 1;\r\n").statements
    assert [s.copy_data for s in stmts] == ["1\r\n", None]


def test_statement_lines_are_counted_across_many_statements():
    sql = "".join(f"INSERT INTO t VALUES ({i});\n-- c\n" for i in range(1000))
    stmts = split_sql(sql).statements
    assert [s.line for s in stmts] == list(range(1, 2000, 2))
    assert all(s.column == 1 for s in stmts)


def test_first_word_is_recorded():
    stmts = split_sql("/* c */ insert into t values (1);\n-- x\nvacuum t;").statements
    assert [s.first_word for s in stmts] == ["INSERT", "VACUUM"]
