"""The export file's columns, shared by the export (which writes them) and the import
(which recognises its own export by them). No I/O here: the CSV reader imports it.

The columns, in order: the standard contact fields, the timestamps, `tags`, then one
column per custom-field key (see folksjobs.exports.repo for how each is written).
"""

from __future__ import annotations

from collections.abc import Sequence

STANDARD_COLUMNS = (
    "email",
    "first_name",
    "last_name",
    "company",
    "phone",
    "avatar_url",
    "created_at",
    "updated_at",
)
TAGS_COLUMN = "tags"
# Between a contact's tag names in the tags column (the export writes them in name order).
# A tag whose name holds it cannot come back whole from a file: it comes back as two.
TAG_SEPARATOR = ";"

# Written by the export, never read back by an import: the timestamps are the database's
# own and the avatar is looked up again. The tags column is read back (the mapping's
# `tags` field, folksjobs.imports.mapping): its tags are added to the contact.
EXPORT_ONLY = ("avatar_url", "created_at", "updated_at")

_FIXED = [*STANDARD_COLUMNS, TAGS_COLUMN]


def header(custom_keys: Sequence[str]) -> list[str]:
    return [*_FIXED, *custom_keys]


def split_tags(cell: str) -> list[str]:
    """A tags cell's names: split at TAG_SEPARATOR, each stripped (a hand-edited
    `vip; lead`), empty ones and repeats dropped, in the cell's order."""
    return list(dict.fromkeys(n for n in map(str.strip, cell.split(TAG_SEPARATOR)) if n))


def is_export_header(names: Sequence[str]) -> bool:
    """Our own export's header: its fixed columns first, exactly, in their order."""
    return [n.strip().lstrip("\ufeff") for n in names[: len(_FIXED)]] == _FIXED
