"""CSV injection (OWASP "CSV Injection"): cells a spreadsheet would run as a formula, and
the guard the export puts before them, which an import recognises and takes off again.

The rule. A cell is guarded when, past any leading single quotes, it begins with `=`,
`+`, `-`, `@`, a tab or a carriage return and is not a plain number (`-12.5`,
`+14155550100`, ASCII digits: a spreadsheet reads those as numbers, not formulas, so phone
numbers and negative amounts survive intact). The guard is one single quote before the
cell, which spreadsheets read as "this is text" and do not display.

The leading quotes are what make the guard reversible: a cell that already begins with a
quote and then a formula prefix (`'=x`, typed by someone who knew the trick) is guarded
too (`''=x`), so `unguard` takes exactly one quote off every cell the rule matches and
`unguard(neutralise(c)) == c` for every cell. A quote anywhere else is data and stays:
`'90s`, `O'Brien`, `'+14155550100` (a plain number after the quote: never guarded).

Quotes, commas, newlines and non-ASCII text are the CSV writer's business (RFC 4180
quoting), not this module's: they round-trip unchanged.

The export applies the same rule inside its SQL (folksjobs.exports.repo builds it from
FORMULA_PREFIXES, GUARD and PLAIN_NUMBER); `neutralise` is the rule in Python (the header
row), `unguard` its inverse (folksjobs.imports.csvstream, on our own exports only).
"""

from __future__ import annotations

import re

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
GUARD = "'"
# Also a PostgreSQL regular expression (exports.py anchors it with ^(?:...)$): keep it to
# the syntax both engines read the same way ([0-9], not \d, which is Unicode in Python).
PLAIN_NUMBER = r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
_PLAIN_NUMBER = re.compile(PLAIN_NUMBER)


def _matches(cell: str) -> bool:
    bare = cell.lstrip(GUARD)
    return bare.startswith(FORMULA_PREFIXES) and not _PLAIN_NUMBER.fullmatch(bare)


def neutralise(cell: str) -> str:
    return GUARD + cell if _matches(cell) else cell


def unguard(cell: str) -> str:
    """The cell as it was before `neutralise`: one guard quote off, when the rule put it on."""
    return cell[1:] if cell.startswith(GUARD) and _matches(cell) else cell
