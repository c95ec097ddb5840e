"""vCard files (.vcf, 2.1, 3.0 and 4.0, as Apple Contacts, Google and Outlook export them)
read as records of a fixed header, so they go through the same pipeline as a CSV: upload
preview and row count, chunks, dedup, exact counts.

The file is split into cards line by line (BEGIN:VCARD .. END:VCARD, never the whole file
in memory) and each card is parsed by vobject on its own, so one broken card is one failed
row and memory stays flat however many cards there are. The mapping is fixed by the
header's names (mapping.suggest_mapping maps them): N to first and last name (FN when
there is no N), ORG to company, the rest to custom fields. Photos, logos, sounds and keys
(binary, often larger than a field may be) are not imported, nor what only describes the
card itself (REV, UID, Outlook's card design, LABEL: the printed form of ADR).

Emails and phones: the preferred one (TYPE=pref in 2.1 and 3.0, the lowest PREF=n in 4.0),
else the first, is the contact's email (phone); the others follow in file order as
numbered custom fields, "Email 2" to "Email 5" and "Phone 2" to "Phone 5" (more phones
go to "Other Phones", more emails to "Other", one per line with their labels). When the
chosen email is not a valid address, the numbered ones are tried in order
(mapping.email_columns), and the one not valid is kept as the custom field "Email"
(contacts.map_cells). Each has its label beside it ("Email 2 Label"): Apple's and
Google's X-ABLABEL of the same group, with Apple's built-in labels read out of their
markup (`_$!<Other>!$_` is "Other"), else the TYPE values that say something (home,
work, cell, fax; not pref, internet or voice).

The first 16 columns keep the places they had before emails and phones were numbered, and
a vCard upload mapped by an earlier release (its header those 16 names) gets the new
columns as custom fields when it is imported (`widened`), so its rows still fit.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import IO, Any, NamedTuple

# Written into CsvFormat.delimiter (and the import record) for a vCard file: a CSV
# delimiter is one character, so the two never meet.
VCARD = "vcard"

NUMBERED = 5  # "Email 2" .. "Email 5", "Phone 2" .. "Phone 5"
HEADER = [
    "Email", "First Name", "Last Name", "Company", "Phone", "Full Name", "Department",
    "Other Phones", "Title", "Note", "URL", "Address", "Birthday", "Nickname", "Categories",
    "Other", "Email Label", "Phone Label",
    *(f"{kind} {n}{label}" for kind in ("Email", "Phone") for n in range(2, NUMBERED + 1)
      for label in ("", " Label")),
]  # fmt: skip
_AT = {name: i for i, name in enumerate(HEADER)}
_SIMPLE = {"title": 8, "note": 9, "url": 10, "adr": 11, "bday": 12, "nickname": 13,
           "categories": 14}  # fmt: skip
_HANDLED = {"email", "n", "fn", "org", "tel", "x-ablabel", *_SIMPLE}
# Not the contact's data: the card's own bookkeeping, and LABEL (ADR, printed).
_IGNORED = {"version", "prodid", "rev", "uid", "x-abuid", "x-abadr", "label", "x-ms-ol-design",
            "x-ms-ol-default-postal-address"}  # fmt: skip
_BINARY = {"photo", "logo", "sound", "key"}
# TYPE values that say nothing a person would call a label.
_UNLABELLED = {"pref", "internet", "voice", "x400", "msg"}
_APPLE_LABEL = re.compile(r"_\$!<(.*)>!\$_")


_EARLIER_HEADER = HEADER[:16]


def widened(mapping: list[str], headers: list[str] | None) -> list[str]:
    """A mapping made for an earlier release's vCard header, with today's further columns
    as custom fields; any other mapping as it is."""
    if headers == _EARLIER_HEADER and len(mapping) == len(_EARLIER_HEADER):
        return mapping + [f"custom:{h}" for h in HEADER[len(_EARLIER_HEADER) :]]
    return mapping


def is_vcard(head_text: str) -> bool:
    return head_text.lstrip("\ufeff \t\r\n")[:11].upper() == "BEGIN:VCARD"


def _name(line: str) -> str:
    """A content line's property name, without its group ("item1.ADR" is "adr")."""
    head = line.split(":", 1)[0].split(";", 1)[0]
    return head.rpartition(".")[2].strip().lower()


def _text(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(_text(v) for v in value)
    # Google writes a URL's colon escaped (https\://), which vCard text does not need.
    return str(value).replace("\\:", ":").strip() if value is not None else ""


def _values(card: Any, name: str) -> list[str]:
    return [t for line in card.contents.get(name, []) if (t := _text(line.value))]


class Entry(NamedTuple):
    value: str
    label: str


def _entries(card: Any, name: str, labels: dict[str, str]) -> list[Entry]:
    """A card's emails or phones, the preferred first, each with its label."""
    ranked: list[tuple[int, int, Entry]] = []
    for i, line in enumerate(card.contents.get(name, [])):
        value = _text(line.value)
        if name == "tel":
            value = value.removeprefix("tel:")  # vCard 4.0 may write a number as a URI
        if not value:
            continue
        types = [t.strip().lower() for v in line.params.get("TYPE", []) for t in v.split(",")]
        types += [t.lower() for t in getattr(line, "singletonparams", [])]
        pref = line.params.get("PREF", [])
        rank = int(pref[0]) if pref and pref[0].isdigit() else 1 if "pref" in types else 101
        label = labels.get(line.group or "") or ", ".join(
            dict.fromkeys(t for t in types if t and t not in _UNLABELLED)
        )
        ranked.append((rank, i, Entry(value, label)))
    return [e for _, _, e in sorted(ranked, key=lambda r: r[:2])]


def _labels(card: Any) -> dict[str, str]:
    """Group -> label, from X-ABLABEL lines (Apple's built-in ones out of their markup)."""
    out = {}
    for line in card.contents.get("x-ablabel", []):
        text = _text(line.value)
        if line.group and text:
            m = _APPLE_LABEL.fullmatch(text)
            out[line.group] = m.group(1) if m else text
    return out


def _labelled(kind: str, e: Entry) -> str:
    return f"{kind} ({e.label}): {e.value}" if e.label else f"{kind}: {e.value}"


def cells_of(card: Any) -> list[str]:
    """One parsed card as cells under HEADER."""
    row = [""] * len(HEADER)
    labels = _labels(card)
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
    other: list[str] = []
    for kind, name, first in (("Email", "email", 0), ("Phone", "tel", 4)):
        entries = _entries(card, name, labels)
        if entries:
            row[first], row[_AT[f"{kind} Label"]] = entries[0]
        for n, e in enumerate(entries[1:NUMBERED], 2):
            row[_AT[f"{kind} {n}"]], row[_AT[f"{kind} {n} Label"]] = e
        more = [_labelled(kind.upper(), e) for e in entries[NUMBERED:]]
        if kind == "Phone":
            row[7] = "\n".join(more)
        else:
            other += more
    for name, i in _SIMPLE.items():
        row[i] = "\n".join(_values(card, name))
    for name, lines in card.contents.items():
        if name in _HANDLED or name in _IGNORED or name in _BINARY:
            continue
        for line in lines:
            if text := _text(line.value):
                label = labels.get(line.group or "")
                other.append(_labelled(name.upper(), Entry(text, label or "")))
    row[15] = "\n".join(other)
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
