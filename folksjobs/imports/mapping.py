"""Column mapping: CSV header (by column index) -> contact field or custom field.

A mapping is a list aligned with the header: "email", "first_name", "last_name",
"company", "phone", "custom:<name>", or "" to skip the column. Mapping by index means
duplicate header names never collapse into one.
"""

from __future__ import annotations

import re

STANDARD_FIELDS = ["email", "first_name", "last_name", "company", "phone"]

_SYNONYMS: dict[str, list[str]] = {
    "email": [
        "email",
        "e-mail",
        "email address",
        "e-mail address",
        "email_address",
        "mail",
        "emailaddress",
        "primary email",
        "work email",
    ],
    "first_name": ["first name", "first_name", "firstname", "given name", "forename", "first"],
    "last_name": ["last name", "last_name", "lastname", "surname", "family name", "last"],
    "company": [
        "company",
        "company name",
        "organization",
        "organisation",
        "employer",
        "account",
        "business",
    ],
    "phone": [
        "phone",
        "phone number",
        "telephone",
        "tel",
        "mobile",
        "cell",
        "phone_number",
        "mobile phone",
    ],
}


def _norm(header: str) -> str:
    return re.sub(r"[^a-z0-9]", "", header.lower())


_LOOKUP = {_norm(s): f for f, syns in _SYNONYMS.items() for s in syns}


class MappingError(ValueError):
    pass


def suggest_mapping(headers: list[str]) -> list[str]:
    """Known names become standard fields (the first column wins); the rest custom fields."""
    mapping: list[str] = []
    taken: set[str] = set()
    for h in headers:
        f = _LOOKUP.get(_norm(h))
        if f and f not in taken:
            taken.add(f)
            mapping.append(f)
        else:
            mapping.append(f"custom:{h}")
    return mapping


def apply_overrides(headers: list[str], mapping: list[str], overrides: list[str]) -> list[str]:
    """`--map "Header=field"` (field: a standard field, `custom:<name>` or `skip`)."""
    out = list(mapping)
    for item in overrides:
        header, sep, target = item.partition("=")
        if not sep:
            raise MappingError(f"--map {item!r}: expected HEADER=FIELD")
        if header not in headers:
            raise MappingError(f"--map {item!r}: no column named {header!r} (columns: {headers})")
        target = target.strip()
        if target == "skip":
            target = ""
        elif target not in STANDARD_FIELDS and not target.startswith("custom:"):
            raise MappingError(
                f"--map {item!r}: unknown field {target!r}; use one of "
                f"{', '.join(STANDARD_FIELDS)}, custom:<name> or skip"
            )
        if target in STANDARD_FIELDS:
            out = ["" if m == target else m for m in out]
        out[headers.index(header)] = target
    return out


def validate_mapping(mapping: list[str]) -> None:
    if "email" not in mapping:
        raise MappingError("no column is mapped to email; map one with --map 'Your Header=email'")
