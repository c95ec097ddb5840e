"""Email addresses: the one normalisation and validity check every part of an import uses.

The verdict is python-email-validator's (`check_deliverability=False`, its special-use
domains): NFC, refused Unicode categories, IDNA labels, quoted local parts and domain
literals refused, lengths in octets. Plain ASCII addresses, nearly all of a real file,
take a compiled pattern that accepts only what email-validator accepts; anything it does
not accept outright (Unicode, punycode, quotes, odd TLDs, the special-use names) asks
email-validator itself, so the two can never disagree. tests/test_addresses.py checks that
against email-validator over thousands of generated tricky addresses.

Kept free of pydantic and database imports: the chunker's child process loads it.
"""

from __future__ import annotations

import re

import email_validator
from email_validator import EmailNotValidError, validate_email

MAX_EMAIL = 254
# RFC 5322 atext, dot-atom local part (no quotes), LDH domain labels, a TLD of letters.
# Lower case only: the address is lower-cased first.
_ATEXT = r"[a-z0-9!#$%&'*+/=?^_`{|}~-]"
_FAST = re.compile(
    rf"{_ATEXT}+(?:\.{_ATEXT}+)*@(?:[a-z0-9](?:[a-z0-9-]{{0,61}}[a-z0-9])?\.)+([a-z]{{2,63}})"
)
# Leading/trailing spaces and tabs are what a spreadsheet leaves around a value; any other
# character (NBSP, line separators, zero-width) stays for email-validator to judge.
_PAD = " \t"
# The special-use names are single labels today (arpa, invalid, local, localhost, onion,
# test): a set lookup of the TLD. A longer one, should a release add it, goes the slow way.
_SPECIAL_TLDS = frozenset(d for d in email_validator.SPECIAL_USE_DOMAIN_NAMES if "." not in d)
_SPECIAL_LONGER = any("." in d for d in email_validator.SPECIAL_USE_DOMAIN_NAMES)


def parse_email(raw: str, allow_test: bool = False) -> tuple[str, str | None]:
    """(normalised address, None), or ("", why it is not a valid address).

    Normalised: the local part NFC and lower-cased, the domain in its Unicode spelling,
    so user@xn--bcher-kva.de and USER@bücher.de are one contact. `allow_test`: the
    special-use `.test` domain is accepted (Settings.email_test_domains, for development
    data; email-validator's test_environment).
    """
    email = raw.strip(_PAD)
    if not email:
        return "", "missing email"
    if email.isascii() and not _SPECIAL_LONGER:
        lower = email.lower()
        m = _FAST.fullmatch(lower)
        if (
            m is not None
            and len(lower) <= MAX_EMAIL
            and lower.index("@") <= 64
            and "--" not in lower
            and (m.group(1) not in _SPECIAL_TLDS or (allow_test and m.group(1) == "test"))
        ):
            return lower, None
    try:
        v = validate_email(email, check_deliverability=False, test_environment=allow_test)
    except EmailNotValidError as e:
        return "", f"invalid email address: {e}"
    return f"{v.local_part.lower()}@{v.domain.lower()}", None


# Google Contacts writes every address of one kind into one cell, separated by this.
MULTI = " ::: "


def choose_email(
    cells: list[str], columns: list[int], allow_test: bool = False
) -> tuple[str, str | None]:
    """A row's email: the first valid address of its email columns (mapping.email_columns),
    in order, each cell split at " ::: ". ("", why) when none is valid: why the first
    non-empty candidate is not, or "missing email"."""
    first_problem: str | None = None
    for i in columns:
        if i >= len(cells):
            continue
        cell = cells[i]
        for candidate in cell.split(MULTI) if MULTI in cell else (cell,):
            email, problem = parse_email(candidate, allow_test)
            if problem is None:
                return email, None
            if first_problem is None and problem != "missing email":
                first_problem = problem
    return "", first_problem or "missing email"


def email_of(cells: list[str], columns: list[int], allow_test: bool = False) -> str | None:
    """The normalised email of a row if it has a valid one, for dedup; None when not."""
    if len(columns) == 1 and columns[0] < len(cells) and MULTI not in cells[columns[0]]:
        email, problem = parse_email(cells[columns[0]], allow_test)  # the common case
    else:
        email, problem = choose_email(cells, columns, allow_test)
    return None if problem else email
