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
TAG_SEPARATOR = ";"

# Written by the export, never read back by an import: the timestamps are the database's
# own, the avatar is looked up again, and an import sets no tags (an override such as
# --map 'tags=custom:tags' keeps the names as a custom field).
EXPORT_ONLY = ("avatar_url", "created_at", "updated_at", TAGS_COLUMN)

_FIXED = [*STANDARD_COLUMNS, TAGS_COLUMN]


def header(custom_keys: Sequence[str]) -> list[str]:
    return [*_FIXED, *custom_keys]


def is_export_header(names: Sequence[str]) -> bool:
    """Our own export's header: its fixed columns first, exactly, in their order."""
    return [n.strip().lstrip("\ufeff") for n in names[: len(_FIXED)]] == _FIXED
