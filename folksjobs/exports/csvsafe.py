"""CSV injection (OWASP "CSV Injection"): cells a spreadsheet would run as a formula.

A cell that begins with `=`, `+`, `-`, `@`, a tab or a carriage return is prefixed with a
single quote, which spreadsheets read as "this is text" and do not display. The one
exception is a plain number (`-12.5`, `+14155550100`, ASCII digits): a spreadsheet reads it
as a number, not a formula, so it is left alone and phone numbers and negative amounts
survive intact. Quotes, commas, newlines and non-ASCII text are the CSV writer's business
(RFC 4180 quoting), not this module's: they round-trip unchanged.

The export applies the same rule inside its SQL (folksjobs.exports.repo builds it from
FORMULA_PREFIXES and PLAIN_NUMBER); `neutralise` is the rule in Python (the header row).
"""

from __future__ import annotations

import re

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
# Also a PostgreSQL regular expression (exports.py anchors it with ^(?:...)$): keep it to
# the syntax both engines read the same way ([0-9], not \d, which is Unicode in Python).
PLAIN_NUMBER = r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
_PLAIN_NUMBER = re.compile(PLAIN_NUMBER)


def neutralise(cell: str) -> str:
    if cell.startswith(FORMULA_PREFIXES) and not _PLAIN_NUMBER.fullmatch(cell):
        return "'" + cell
    return cell
