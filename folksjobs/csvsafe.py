"""CSV injection (OWASP "CSV Injection"): cells a spreadsheet would run as a formula.

A cell that begins with `=`, `+`, `-`, `@`, a tab or a carriage return is prefixed with a
single quote, which spreadsheets read as "this is text" and do not display. The one
exception is a plain number (`-12.5`, `+14155550100`): a spreadsheet reads it as a number,
not a formula, so it is left alone and phone numbers and negative amounts survive intact.
Quotes, commas, newlines and non-ASCII text are the csv module's business (RFC 4180
quoting), not this module's: they round-trip unchanged.
"""

from __future__ import annotations

import re

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")


def neutralise(cell: str) -> str:
    if cell.startswith(FORMULA_PREFIXES) and not _PLAIN_NUMBER.fullmatch(cell):
        return "'" + cell
    return cell
