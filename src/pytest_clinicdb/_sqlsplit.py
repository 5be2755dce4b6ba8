"""Split a SQL file into statements the way psql does, keeping where each one starts.

The runner needs statement boundaries to report an error as ``file:line:column``
(PostgreSQL gives a position inside the text it was sent), to find what a file
may not do inside a transaction, and to feed ``COPY … FROM stdin`` data to the
server.  Boundaries follow psql's own lexer: ``'…'`` strings (``''`` escapes),
``E'…'`` strings (backslash escapes), ``"identifiers"``, ``--`` and nested
``/* */`` comments, ``$tag$ … $tag$`` dollar quoting, parentheses (a ``;`` inside
``( … )`` does not end a statement, as in ``CREATE RULE … DO ALSO (…; …)``) and
SQL-standard ``BEGIN ATOMIC … END`` bodies of ``CREATE FUNCTION/PROCEDURE``.

A backslash outside quotes starts a psql meta-command that runs to the end of
its line — at the start of a line or after a statement (``SELECT 1 \\gexec``),
as psql reads it.  Meta-commands are reported, never sent; the caller decides
which ones it understands.  ``COPY … FROM stdin;`` takes the lines after it, up
to a line ``\\.``, as its data.

The scan is linear: it jumps from one character that matters to the next with a
regular expression, and counts lines incrementally.
"""

from __future__ import annotations

import bisect
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

# Identifier characters: ASCII letters, "_" (and digits and "$" after the first), and
# every character from U+0080 on, as PostgreSQL's lexer reads them.  Written as the
# complement of the ASCII characters that are not: the same set as
# [A-Za-z_\x80-\U0010ffff], compiled in 0.1 ms instead of 4 (it is compiled at import).
_IDENT_START = r"^\x00-\x40\x5b-\x5e\x60\x7b-\x7f"
_IDENT_CONT = r"^\x00-\x23\x25-\x2f\x3a-\x40\x5b-\x5e\x60\x7b-\x7f"
_DOLLAR_TAG = re.compile(rf"\$(?:[{_IDENT_START}][^\x00-\x2f\x3a-\x40\x5b-\x5e\x60\x7b-\x7f]*)?\$")
_WORD = re.compile(f"[{_IDENT_START}][{_IDENT_CONT}]*")
# What can change the lexer's state.  Letters only matter while reading the first
# words of a CREATE statement and inside a routine's body (BEGIN ATOMIC … END).
_FAST = re.compile(r"""[-/'"$\\;()]""")
_WORDY = re.compile(f"""[-/'"$\\\\;()]|[{_IDENT_START}][{_IDENT_CONT}]*""")
_GAP = re.compile(r"[\s;]+")
# A whole statement made only of plain characters, standard strings without
# backslashes, quoted identifiers and parentheses nested up to three deep, up to
# its ";" — most lines of a big seed.  One regex match instead of a loop turn per
# quote or parenthesis; anything else (comments, dollar quotes, backslashes,
# deeper nesting) falls back to the loop, which reads every statement correctly.
# Python >= 3.11 has possessive quantifiers: runs of plain characters match in one
# step and never backtrack.  Without them, one character per step keeps the
# alternatives disjoint, so a statement that does not match fails in linear time.
_RUN, _ALL = ("++", "*+") if sys.version_info >= (3, 11) else ("", "*")
_PLAIN = rf"[^;'\"$\\/()\-]{_RUN}|-(?!-)|/(?!\*)|'[^'\\]{_ALL}'|\"[^\"]{_ALL}\""
_NEST1 = rf"\((?:{_PLAIN}){_ALL}\)"
_NEST2 = rf"\((?:{_PLAIN}|{_NEST1}){_ALL}\)"
_NEST3 = rf"\((?:{_PLAIN}|{_NEST2}){_ALL}\)"
_SIMPLE = re.compile(rf"(?:{_PLAIN}|{_NEST3}){_ALL};")
_COPY_END = re.compile(r"^\\\.\r?$", re.MULTILINE)
_FROM_STDIN = re.compile(r"\bFROM\s+STDIN\b", re.IGNORECASE)


class Statement(NamedTuple):
    """One statement of a file: its text and where it starts (1-based line and column).

    ``offset``/``end`` are character offsets in the text that was split;
    ``copy_data`` holds the rows of a ``COPY … FROM stdin`` statement (the lines
    after it, up to ``\\.``), ``copy_line`` the line they start on.  ``path`` is
    set on the statements of an included file (``\\i``).  (A named tuple: a big
    seed has tens of thousands of them.)
    """

    text: str
    offset: int
    line: int
    column: int
    end: int = -1
    first_word: str = ""
    copy_data: str | None = None
    copy_line: int = 0
    path: Path | None = None

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
    """A psql meta-command found outside any string (``\\i file`` …).

    ``text`` is the whole command as written (``\\set ON_ERROR_STOP on``);
    ``offset``/``end`` delimit it in the text; ``in_statement`` is true when it
    follows the start of a statement on the same line (``SELECT 1 \\gexec``).
    """

    text: str
    line: int
    offset: int = 0
    end: int = 0
    in_statement: bool = False

    @property
    def name(self) -> str:
        """The command itself, as psql names it: ``\\i``, ``\\gexec``, ``\\set``."""
        m = re.match(r"\\([A-Za-z_]+|[^A-Za-z_\s])", self.text)
        return "\\" + (m.group(1) if m else "")

    @property
    def args(self) -> str:
        return self.text[len(self.name) :].strip()


class SplitResult:
    """Statements and meta-commands of a text, in order."""

    def __init__(
        self,
        text: str,
        statements: list[Statement],
        meta_commands: list[MetaCommand],
        problems: list[tuple[int, str]] | None = None,
    ) -> None:
        self.text = text
        self.statements = statements
        self.meta_commands = meta_commands
        #: (line, what) for text the lexer could place nowhere
        self.problems = problems or []
        self._blank_starts = [m.offset for m in meta_commands]

    def text_between(self, start: int, end: int) -> str:
        """``text[start:end]`` with the meta-commands in it replaced by spaces.

        Offsets stay the same, so a position the server reports in this text
        maps back into the file by adding ``start``.
        """
        chunk = self.text[start:end]
        i = bisect.bisect_left(self._blank_starts, start)
        metas = []
        while i < len(self.meta_commands) and self.meta_commands[i].offset < end:
            metas.append(self.meta_commands[i])
            i += 1
        if not metas:
            return chunk
        parts = []
        pos = start
        for m in metas:
            parts.append(self.text[pos : m.offset])
            parts.append(" " * (min(m.end, end) - m.offset))
            pos = min(m.end, end)
        parts.append(self.text[pos:end])
        return "".join(parts)


def line_col(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column of a 0-based character offset."""
    line = text.count("\n", 0, offset) + 1
    last_nl = text.rfind("\n", 0, offset)
    return line, offset - last_nl


def _is_ident_char(ch: str) -> bool:
    return ch.isalnum() or ch == "_" or ch == "$" or ord(ch) >= 0x80


def _ident_at(text: str, i: int) -> bool:
    return _is_ident_char(text[i])


class _Lines:
    """Line numbers of increasing offsets, counted incrementally (linear overall)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.line = 1

    def at(self, offset: int) -> tuple[int, int]:
        if offset < self.pos:  # never happens in one left-to-right pass; stay correct anyway
            return line_col(self.text, offset)
        self.line += self.text.count("\n", self.pos, offset)
        self.pos = offset
        return self.line, offset - self.text.rfind("\n", 0, offset)


def split_sql(text: str) -> SplitResult:
    """Split ``text`` into statements; empty statements (only comments) are dropped."""
    statements: list[Statement] = []
    metas: list[MetaCommand] = []
    problems: list[tuple[int, str]] = []
    lines = _Lines(text)
    n = len(text)
    pos = 0
    while True:
        # Between statements: whitespace, stray semicolons, comments, meta-commands.
        while True:
            m = _GAP.match(text, pos)
            if m:
                pos = m.end()
            if text.startswith("--", pos):
                end = text.find("\n", pos)
                pos = n if end < 0 else end
            elif text.startswith("/*", pos):
                pos = _skip_block_comment(text, pos)
            elif text.startswith("\\", pos):
                pos = _meta(text, pos, metas, lines, in_statement=False)
            else:
                break
        if pos >= n:
            break
        pos = _statement(text, pos, statements, metas, problems, lines)
    return SplitResult(text, statements, metas, problems)


def _statement(
    text: str,
    start: int,
    statements: list[Statement],
    metas: list[MetaCommand],
    problems: list[tuple[int, str]],
    lines: _Lines,
) -> int:
    """Read the statement starting at ``start``; append it; return where the scan goes on."""
    n = len(text)
    line, col = lines.at(start)
    w = _WORD.match(text, start)
    first = w.group(0).upper() if w else ""
    # Only CREATE statements can be routines with a BEGIN ATOMIC body: read their words.
    words: list[str] | None = [] if first == "CREATE" else None
    routine = False
    begin_depth = 0
    depth = 0
    own_metas = len(metas)
    pattern = _WORDY if words is not None else _FAST
    pos = start
    end = n
    simple = _SIMPLE.match(text, start) if words is None else None
    if simple:
        end = pos = simple.end()
    while simple is None:
        m = pattern.search(text, pos)
        if m is None:
            break
        i = m.start()
        ch = text[i]
        if ch == ";":
            pos = i + 1
            if depth == 0 and begin_depth == 0:
                end = pos
                break
        elif ch == "'":
            backslash = i > 0 and text[i - 1] in "eE" and (i < 2 or not _ident_at(text, i - 2))
            pos = _skip_quoted(text, i, "'", backslash)
        elif ch == '"':
            pos = _skip_quoted(text, i, '"', False)
        elif ch == "$":
            tag = _DOLLAR_TAG.match(text, i) if i == 0 or not _ident_at(text, i - 1) else None
            if tag:
                close = text.find(tag.group(0), tag.end())
                pos = n if close < 0 else close + len(tag.group(0))
            else:
                pos = i + 1
        elif ch == "-":
            if text.startswith("--", i):
                nl = text.find("\n", i)
                pos = n if nl < 0 else nl
            else:
                pos = i + 1
        elif ch == "/":
            pos = _skip_block_comment(text, i) if text.startswith("/*", i) else i + 1
        elif ch == "(":
            depth += 1
            pos = i + 1
        elif ch == ")":
            depth = max(0, depth - 1)
            pos = i + 1
        elif ch == "\\":
            pos = _meta(text, i, metas, lines, in_statement=True)
        else:  # a word (only searched for in CREATE statements)
            pos = m.end()
            assert words is not None
            word = m.group(0).upper()
            if not routine:
                words.append(word)
                head = [x for x in words if x not in ("OR", "REPLACE")]
                if len(head) >= 2:
                    routine = head[1] in ("FUNCTION", "PROCEDURE")
                    if not routine:
                        pattern = _FAST  # an ordinary CREATE: no more words needed
            # As psql does: BEGIN opens a body, CASE nests inside one, END closes.
            elif word == "BEGIN":
                begin_depth += 1
            elif word == "CASE":
                if begin_depth:
                    begin_depth += 1
            elif word == "END" and begin_depth:
                begin_depth -= 1
    body = text[start:end]
    if len(metas) > own_metas:
        # psql runs a meta-command met inside a statement and keeps reading the
        # statement after it: blank the command out of the text sent (offsets kept).
        for meta in metas[own_metas:]:
            a, b = meta.offset - start, meta.end - start
            body = body[:a] + " " * (b - a) + body[b:]
    if first == "COPY" and _FROM_STDIN.search(_strip_comments(body)):
        # The rows start on the line after the statement and end at a line "\.".
        nl = text.find("\n", end)
        data_start = n if nl < 0 else nl + 1
        rest = text[end:data_start]
        if rest.strip() and not rest.strip().startswith("--"):
            problems.append((line, "text after COPY … FROM stdin; on the same line"))
        stop = _COPY_END.search(text, data_start)
        data = text[data_start : stop.start() if stop else n]
        statements.append(
            Statement(body, start, line, col, end, first, data, lines.at(data_start)[0])
        )
        if stop is None:
            return n
        nl = text.find("\n", stop.end())
        return n if nl < 0 else nl + 1
    statements.append(Statement(body, start, line, col, end, first))
    return end


def _meta(text: str, i: int, metas: list[MetaCommand], lines: _Lines, *, in_statement: bool) -> int:
    nl = text.find("\n", i)
    end = len(text) if nl < 0 else nl
    raw = text[i:end]
    stripped = raw.rstrip()
    metas.append(MetaCommand(stripped, lines.at(i)[0], i, i + len(stripped), in_statement))
    return end


def _skip_block_comment(text: str, i: int) -> int:
    n = len(text)
    depth = 1
    i += 2
    while depth:
        close = text.find("*/", i)
        if close < 0:
            return n
        opener = text.find("/*", i, close)
        if opener >= 0:
            depth += 1
            i = opener + 2
        else:
            depth -= 1
            i = close + 2
    return i


_BACKSLASH_STRING_END = re.compile(r"(?:[^'\\]|\\.|'')*'", re.DOTALL)


def _skip_quoted(text: str, i: int, quote: str, backslash: bool) -> int:
    n = len(text)
    if backslash:
        m = _BACKSLASH_STRING_END.match(text, i + 1)
        return m.end() if m else n
    i += 1
    while True:
        close = text.find(quote, i)
        if close < 0:
            return n
        if close + 1 < n and text[close + 1] == quote:
            i = close + 2
            continue
        return close + 1


def _strip_comments(text: str) -> str:
    """Remove leading/inline comments well enough to read a statement's first words."""
    if "--" not in text and "/*" not in text:
        return text
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
