"""What ``Catalog.sql`` (and ``cosmoscope sql``) accepts: queries, never statements that change things.

polars' SQL context runs ``DELETE``, ``DROP`` and ``TRUNCATE`` against its own registered frames,
so they "succeed" without touching the catalog, and refuses ``UPDATE`` with its parser's internal
structure. Neither tells the user the truth; a statement that is not a query is refused here
first, in one sentence.
"""

from __future__ import annotations

import re

from cosmoscope.errors import InvalidArgumentError

#: Statements that only read: what a query may start with.
QUERY_WORDS = ("SELECT", "WITH", "VALUES", "SHOW", "EXPLAIN")
_LEADING = re.compile(r"(\s+|--[^\n]*(\n|$)|/\*.*?\*/|\()", re.S)


def first_word(query: str) -> str:
    """The statement's first keyword, past comments, blanks and opening parentheses.

    >>> first_word("-- mine\\n (select 1)"), first_word("/* x */ DELETE FROM observations")
    ('SELECT', 'DELETE')
    """
    pos = 0
    while m := _LEADING.match(query, pos):
        if m.end() == pos:
            break
        pos = m.end()
    word = re.match(r"[A-Za-z_]+", query[pos:])
    return word.group(0).upper() if word else ""


def check_query(query: str) -> str:
    """Return ``query`` if it is a query; raise :class:`InvalidArgumentError` otherwise."""
    if not isinstance(query, str) or not query.strip():
        raise InvalidArgumentError("give an SQL query, e.g. SELECT mission_id, count(*) FROM observations "
                                   "GROUP BY mission_id")
    word = first_word(query)
    if word not in QUERY_WORDS:
        raise InvalidArgumentError(f"only queries can be run: start with SELECT or WITH, not "
                                   f"{word or query.strip()[:20]!r} (SQL here reads the catalog, never changes it)")
    return query
