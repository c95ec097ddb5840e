"""vCard files (.vcf, 3.0 and 4.0, as Apple Contacts, Google and Outlook export them) read
as records of a fixed header, so they go through the same pipeline as a CSV: upload
preview and row count, chunks, dedup, exact counts.

The file is split into cards line by line (BEGIN:VCARD .. END:VCARD, never the whole file
in memory) and each card is parsed by vobject on its own, so one broken card is one failed
row and memory stays flat however many cards there are. The mapping is fixed by the
header's names (mapping.suggest_mapping maps them): EMAIL to email (several are one
" ::: " list, the first valid wins, as for Google's CSV), N to first and last name (FN
when there is no N), ORG to company, TEL to phone; the rest to custom fields. Photos,
logos, sounds and keys (binary, often larger than a field may be) are not imported.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Any

from folksjobs.imports.addresses import MULTI

# Written into CsvFormat.delimiter (and the import record) for a vCard file: a CSV
# delimiter is one character, so the two never meet.
VCARD = "vcard"

HEADER = [
    "Email", "First Name", "Last Name", "Company", "Phone", "Full Name", "Department",
    "Other Phones", "Title", "Note", "URL", "Address", "Birthday", "Nickname", "Categories",
    "Other",
]  # fmt: skip
_SIMPLE = {"title": 8, "note": 9, "url": 10, "adr": 11, "bday": 12, "nickname": 13,
           "categories": 14}  # fmt: skip
_HANDLED = {"email", "n", "fn", "org", "tel", "version", "prodid", *_SIMPLE}
_BINARY = {"photo", "logo", "sound", "key"}


def is_vcard(head_text: str) -> bool:
    return head_text.lstrip("\ufeff \t\r\n")[:11].upper() == "BEGIN:VCARD"


def _name(line: str) -> str:
    """A content line's property name, without its group ("item1.ADR" is "adr")."""
    head = line.split(":", 1)[0].split(";", 1)[0]
    return head.rpartition(".")[2].strip().lower()


def _text(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(_text(v) for v in value)
    return str(value).strip() if value is not None else ""


def _values(card: Any, name: str) -> list[str]:
    return [t for line in card.contents.get(name, []) if (t := _text(line.value))]


def cells_of(card: Any) -> list[str]:
    """One parsed card as cells under HEADER."""
    row = [""] * len(HEADER)
    row[0] = MULTI.join(_values(card, "email"))
    if "n" in card.contents:
        n = card.n.value
        row[1], row[2] = _text(n.given), _text(n.family)
    fn = _values(card, "fn")
    row[5] = fn[0] if fn else ""
    if not (row[1] or row[2]):
        row[1] = row[5]
    if "org" in card.contents:
        org = card.org.value if isinstance(card.org.value, list) else [card.org.value]
        row[3] = _text(org[0]) if org else ""
        row[6] = ", ".join(_text(o) for o in org[1:] if _text(o))
    # vCard 4.0 may write a number as a URI: tel:+1-555-0100.
    phones = [p.removeprefix("tel:") for p in _values(card, "tel")]
    row[4] = phones[0] if phones else ""
    row[7] = "\n".join(phones[1:])
    for name, i in _SIMPLE.items():
        row[i] = "\n".join(_values(card, name))
    row[15] = "\n".join(
        f"{name.upper()}: {v}"
        for name in card.contents
        if name not in _HANDLED and name not in _BINARY
        for v in _values(card, name)
    )
    return row


def iter_cells(text: IO[str], card_limit: int) -> Iterator[list[str] | str]:
    """HEADER, then each card's cells, or (a str) why a card or stray text is refused.

    A card longer than `card_limit` characters is refused without being held whole.
    """
    import vobject  # only for vCard files; the CSV chunker never pays for it

    yield list(HEADER)
    lines: list[str] = []
    size, start, number, skipping, binary = 0, 0, 0, False, False
    stray: int | None = None
    # Lines are read bounded: a hostile line of hundreds of megabytes arrives in pieces
    # and is refused by the card's size limit.
    while line := text.readline(card_limit + 1):
        number += 1
        word = line.strip().upper()
        if not lines and not skipping:
            if word == "BEGIN:VCARD":
                if stray is not None:
                    yield f"text outside a vCard at line {stray}"
                    stray = None
                lines, size, start = [line], len(line), number
            elif word and stray is None:
                stray = number
            continue
        if skipping:
            if word == "END:VCARD":
                skipping = False
            continue
        if line[:1] in (" ", "\t"):  # a folded continuation of the line before
            if binary:
                continue
        else:
            binary = _name(line) in _BINARY
            if binary:
                continue
        lines.append(line)
        size += len(line)
        if size > card_limit:
            yield f"the vCard at line {start} is larger than {card_limit:,} characters"
            lines, skipping = [], word != "END:VCARD"
            continue
        if word == "END:VCARD":
            try:
                yield cells_of(vobject.readOne("".join(lines)))
            except Exception as e:  # vobject raises several kinds; each is this card's
                yield f"the vCard at line {start} cannot be read: {e}"
            lines = []
    if lines:
        yield f"the vCard at line {start} has no END:VCARD"
    elif stray is not None:
        yield f"text outside a vCard at line {stray}"
