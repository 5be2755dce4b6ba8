"""Split a SQL file into statements, keeping where each one starts.

The runner executes statements one by one so that an error can be reported as
``file:line:column``: PostgreSQL gives a position inside the statement it was
sent, and we know where that statement starts in the file.

The lexer understands what a migration file may contain: ``'...'`` strings
(``''`` escapes), ``E'...'`` strings (backslash escapes), ``"identifiers"``,
``--`` and nested ``/* */`` comments, ``$tag$ ... $tag$`` dollar quoting and
SQL-standard ``BEGIN ATOMIC ... END`` function bodies.  psql meta-commands
(``\\i``, ``\\set`` ...) are reported, never sent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_DOLLAR_TAG = re.compile(r"\$([A-Za-z_\x80-\uffff][A-Za-z0-9_\x80-\uffff]*)?\$")


@dataclass(frozen=True)
class Statement:
    """One statement of a file: its text and where it starts (1-based)."""

    text: str
    offset: int
    line: int
    column: int

    def keywords(self, count: int = 3) -> list[str]:
        """The first ``count`` words of the statement, upper-cased (comments skipped)."""
        words: list[str] = []
        for match in re.finditer(r"[A-Za-z_]+", _strip_comments(self.text)):
            words.append(match.group(0).upper())
            if len(words) == count:
                break
        return words


@dataclass(frozen=True)
class MetaCommand:
    """A psql meta-command found outside any string (``\\i file`` ...)."""

    text: str
    line: int


class SplitResult:
    def __init__(self, statements: list[Statement], meta_commands: list[MetaCommand]) -> None:
        self.statements = statements
        self.meta_commands = meta_commands


def line_col(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column of a 0-based character offset."""
    line = text.count("\n", 0, offset) + 1
    last_nl = text.rfind("\n", 0, offset)
    return line, offset - last_nl


def _is_ident_char(ch: str) -> bool:
    return ch.isalnum() or ch == "_" or ch == "$" or ord(ch) >= 0x80


def _ident_at(text: str, i: int) -> bool:
    return _is_ident_char(text[i])


def split_sql(text: str) -> SplitResult:
    """Split ``text`` into statements; empty statements (only comments) are dropped."""
    statements: list[Statement] = []
    meta: list[MetaCommand] = []
    n = len(text)
    i = 0
    start: int | None = None  # offset of the first significant char of the current statement
    words: list[str] = []  # significant words of the current statement (upper-case)
    atomic_depth = 0  # > 0 inside a BEGIN ATOMIC body
    at_line_start = True

    def finish(end: int) -> None:
        nonlocal start, words, atomic_depth
        if start is not None:
            line, col = line_col(text, start)
            statements.append(Statement(text[start:end], start, line, col))
        start = None
        words = []
        atomic_depth = 0

    while i < n:
        ch = text[i]
        if ch == "\n":
            at_line_start = True
            i += 1
            continue
        if ch in " \t\r\f":
            i += 1
            continue
        line_start_here = at_line_start
        at_line_start = False
        nxt = text[i + 1] if i + 1 < n else ""
        if ch == "-" and nxt == "-":
            end = text.find("\n", i)
            i = n if end == -1 else end
            continue
        if ch == "/" and nxt == "*":
            depth = 1
            i += 2
            while i < n and depth:
                if text.startswith("/*", i):
                    depth += 1
                    i += 2
                elif text.startswith("*/", i):
                    depth -= 1
                    i += 2
                else:
                    i += 1
            continue
        if ch == "\\" and line_start_here and start is None:
            end = text.find("\n", i)
            end = n if end == -1 else end
            meta.append(MetaCommand(text[i:end].strip(), line_col(text, i)[0]))
            i = end
            continue
        if start is None:
            if ch == ";":
                i += 1
                continue
            start = i
        if ch == ";" and atomic_depth == 0:
            finish(i + 1)
            i += 1
            continue
        if ch == "'":
            backslash = i > 0 and text[i - 1] in "eE" and (i < 2 or not _is_ident_char(text[i - 2]))
            i = _skip_quoted(text, i, "'", backslash)
            continue
        if ch == '"':
            i = _skip_quoted(text, i, '"', False)
            continue
        if ch == "$" and (i == 0 or not _is_ident_char(text[i - 1])):
            m = _DOLLAR_TAG.match(text, i)
            if m:
                tag = m.group(0)
                close = text.find(tag, m.end())
                i = n if close == -1 else close + len(tag)
                continue
        if ch.isalpha() or ch == "_":
            j = i
            while j < n and _is_ident_char(text[j]):
                j += 1
            word = text[i:j].upper()
            if atomic_depth:
                if word in ("BEGIN", "CASE"):
                    atomic_depth += 1
                elif word == "END":
                    atomic_depth -= 1
            elif word == "ATOMIC" and words and words[-1] == "BEGIN" and _is_routine(words):
                atomic_depth = 1
            words.append(word)
            i = j
            continue
        i += 1
    finish(n)
    return SplitResult(statements, meta)


def _is_routine(words: list[str]) -> bool:
    head = [w for w in words[:4] if w not in ("OR", "REPLACE")]
    return len(head) >= 2 and head[0] == "CREATE" and head[1] in ("FUNCTION", "PROCEDURE")


def _skip_quoted(text: str, i: int, quote: str, backslash: bool) -> int:
    n = len(text)
    i += 1
    while i < n:
        ch = text[i]
        if backslash and ch == "\\":
            i += 2
            continue
        if ch == quote:
            if i + 1 < n and text[i + 1] == quote:
                i += 2
                continue
            return i + 1
        i += 1
    return n


def _strip_comments(text: str) -> str:
    """Remove leading/inline comments well enough to read a statement's first words."""
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"--[^\n]*", " ", text)


_DOLLAR = re.compile(r"\$([A-Za-z_][A-Za-z_0-9]*)?\$")


def normalize_sql(text: str) -> str:
    """``text`` without comments and with whitespace runs collapsed, strings kept verbatim.

    Two files with the same normalized text differ only in comments or layout.
    """
    out: list[str] = []
    i, n = 0, len(text)
    space = False

    def emit(chunk: str) -> None:
        nonlocal space
        if space and out:
            out.append(" ")
        space = False
        out.append(chunk)

    while i < n:
        ch = text[i]
        if ch.isspace():
            space = True
            i += 1
        elif text.startswith("--", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
            space = True
        elif text.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
            space = True
        elif ch in "'\"":
            backslash = ch == "'" and i > 0 and text[i - 1] in "eE"
            end = _skip_quoted(text, i, ch, backslash)
            emit(text[i:end])
            i = end
        elif ch == "$" and (m := _DOLLAR.match(text, i)) and not (i and _ident_at(text, i - 1)):
            close = text.find(m.group(0), m.end())
            end = n if close < 0 else close + len(m.group(0))
            emit(text[i:end])
            i = end
        else:
            emit(ch)
            i += 1
    return "".join(out)
