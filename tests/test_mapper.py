"""Mapper.map gives exactly validate's answer, on its quick path and off it.

The quick path picks cells by column index; every shape it must get right or hand to
validate is here: no, one and several custom columns, unmapped and missing (ragged)
cells, a row longer than the field limit in total but not in any cell, a cell over the
limit, a NUL, cells past the header, and an email the chunker found invalid.
"""

from __future__ import annotations

import pytest

from folksjobs.imports.contacts import MAX_FIELD, Mapper, Values, validate

LONG = "x" * (MAX_FIELD - 10)

ROWS: list[list[str]] = [
    ["a@example.com", " Ann ", "Lee", "Acme", "+1 555", "pro", "Paris"],
    ["b@example.com", "", "", "", "", "", ""],
    ["c@example.com", "Cy"],  # ragged: the missing cells are empty
    ["d@example.com", LONG, LONG, "Co", "", LONG, ""],  # long in total, no cell over
    ["e@example.com", "x" * (MAX_FIELD + 1), "", "", "", "", ""],  # one cell over
    ["f@example.com", "F\x00", "", "", "", "", ""],  # NUL
    ["g@example.com", "G", "", "", "", "", "", "extra"],  # a cell past the header
    ["not an email", "H", "", "", "", "", ""],
]

MAPPINGS = {
    "no custom": ["email", "first_name", "last_name", "company", "phone", "", ""],
    "one custom": ["email", "first_name", "", "company", "phone", "custom:plan", ""],
    "two custom": ["email", "first_name", "last_name", "", "phone", "custom:plan",
                   "custom:city"],
}  # fmt: skip


def expected(
    mapper: Mapper, mapping: list[str]
) -> tuple[list[int], list[Values], list[tuple[int, str]]]:
    rows: list[int] = []
    values: list[Values] = []
    failures: list[tuple[int, str]] = []
    for n, cells in enumerate(ROWS, 2):
        m = validate(n, cells, mapping, mapper.multi_key, allow_test=False)
        if m.contact is None:
            failures.append((n, m.error or "invalid row"))
            continue
        c = m.contact
        rows.append(n)
        values.append((
            c.email, c.first_name or "", c.last_name or "", c.company or "", c.phone or "",
            c.tags or "", *(c.custom_fields.get(k, "") for k in mapper.custom_keys),
        ))  # fmt: skip
    return rows, values, failures


@pytest.mark.parametrize("name", sorted(MAPPINGS))
def test_map_is_validate(name: str) -> None:
    mapping = MAPPINGS[name]
    mapper = Mapper(mapping)
    # The chunker's email (None: not valid), as process-batch passes it.
    items = [(n, cells, None if "@" not in cells[0] else cells[0])
             for n, cells in enumerate(ROWS, 2)]  # fmt: skip
    got = mapper.map(items)
    assert got == expected(mapper, mapping)
    # The long row took the quick path and kept every cell.
    assert 5 in got[0]
    assert len(got[2]) == 4  # over the limit, NUL, past the header, not an email


def test_an_email_column_that_was_not_chosen_keeps_its_cell() -> None:
    """With further email columns, an email column's invalid address (a further column's
    taken instead) stays, verbatim, in the custom field named after its header; a valid
    one (or the only column) adds nothing. Map and validate agree on every shape."""
    headers = ["Email", "Name", "Email 2"]
    mapping = ["email", "first_name", "custom:Email 2"]
    rows = [
        ["typo@@example.com", "A", "a@example.com"],  # the second address is the email
        ["B@Example.com ", "B", "b2@example.com"],  # the first, in another spelling
        ["", "C", "c@example.com"],  # nothing to keep
        ["d@exämple.com", "D", "d2@example.com"],  # valid, not plain ASCII: validate's
    ]
    mapper = Mapper(mapping, headers)
    assert mapper.multi_key == "Email"
    items = [(2, rows[0], "a@example.com"), (3, rows[1], "b@example.com"),
             (4, rows[2], "c@example.com"), (5, rows[3], "d@exämple.com")]  # fmt: skip
    got = mapper.map(items)
    want: list[Values] = []
    for n, cells in enumerate(rows, 2):
        c = validate(n, cells, mapping, "Email").contact
        assert c is not None
        want.append((c.email, c.first_name or "", "", "", "", "",
                     *(c.custom_fields.get(k, "") for k in mapper.custom_keys)))  # fmt: skip
    assert got == ([2, 3, 4, 5], want, [])
    fields = [dict(zip(mapper.custom_keys, v[6:], strict=True)) for v in got[1]]
    assert [f["Email"] for f in fields] == ["typo@@example.com", "", "", ""]
