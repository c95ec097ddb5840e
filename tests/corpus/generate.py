"""The hostile-input CSV corpus: files a spreadsheet can produce, and some it cannot.

    python -m tests.corpus.generate DIR [--limit BYTES]

writes every file of `CASES` into DIR with `manifest.json` beside them. `MANIFEST` maps
each file name to its expected outcome:

    {"outcome": "imported", "rows": N, "inserted": N, "updated": 0, "failed": N,
     "duplicates": N, "failed_records": [...], "reason_contains": "...", ...}
    {"outcome": "refused", "stage": "upload", "refusal_contains": ["binary|xlsx", "csv"]}

and, where the issue allows more than one right answer ("decoded as cp1252 with a
warning, or refused with a clear message"), an `"or"` list of alternatives; the first
entry is the one this corpus prefers. How the outcomes were decided (issue 9 and the
import issue):

- Rows are numbered by record, 1 = the first record after the header (a quoted newline
  does not start a new row); `failed_records` use that numbering. The import counts the
  header as row 1, so its error samples say record + 1 (tests/corpus/check.py).
- Every completed import adds up: inserted + updated + failed + duplicates = rows.
- Emails are trimmed and lower-cased before validation and dedup (pydantic's EmailStr:
  international local parts and IDN domains are valid; punycode reads as unicode). An
  invalid or empty email is a failed row whose reason names the email. A repeated email
  is a duplicate (in a chunk the last row wins, across chunks the first chunk wins).
- Values are stored verbatim as text: formulas, SQL, HTML, 00123 and 1E5. Bytes are never
  dropped silently: a value either arrives whole, or its row fails with a reason, or the
  whole file is refused with a message.
- Blank lines are not rows. Missing trailing cells are empty values; extra cells are a
  row failure unless they are empty (trailing delimiters) — or they are kept; they are
  never silently dropped.
- Binary files (zip/XLSX, PDF, PNG, gzip, a NUL in the first 8 KB) and files over the
  byte limit are refused at upload, before any import starts, with a hint.

Keys of an expectation (all optional except outcome):
  outcome            "imported" | "refused"
  stage              "upload": the refusal must come before any import starts
  rows, inserted, updated, failed, duplicates     exact counts (absent = not checked)
  failed_records     the failed rows' record numbers, as the error samples show them
  reason_contains    "a|b": every error sample's reason contains one of these (any case)
  refusal_contains   ["a|b", "c"]: the message contains one of a/b, and c (any case)
  warning_contains   "a|b": some warning of the import contains one of these
  emails             exactly these (normalised) emails are stored
  must_store         at least these emails are stored
  contacts           {email: {field: value}}: these stored values, exactly
  custom             {email: {key: value}}: the stored custom fields, exactly these
  values_present     strings that appear whole in some stored value (custom fields too)
  no_newlines        no stored value contains a line break (nothing swallowed)
  settings           Settings overrides the upload must run with
File-level keys: encoding / delimiter (how the file really is written), note.
"""

from __future__ import annotations

import argparse
import codecs
import gzip
import io
import json
import struct
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_LIMIT = 4096
MB = 1024 * 1024
HEADER = "email,first_name,last_name,company"


def lines(*rows: str, nl: str = "\n", final: bool = True) -> str:
    return nl.join(rows) + (nl if final else "")


def basic_rows() -> list[str]:
    return [
        "zoe@example.com,Zoë,Ångström,Café Ltd",
        "jose@example.com,José,Núñez,Señor SA",
        "li@example.com,李,王,公司",
    ]


BASIC_CONTACTS = {
    "zoe@example.com": {"first_name": "Zoë", "last_name": "Ångström", "company": "Café Ltd"},
    "jose@example.com": {"first_name": "José", "last_name": "Núñez"},
    "li@example.com": {"first_name": "李", "company": "公司"},
}


def imported(
    rows: int, *, inserted: int | None = None, failed: int = 0, duplicates: int = 0, **kw: Any
) -> dict[str, Any]:
    return {
        "outcome": "imported",
        "rows": rows,
        "inserted": rows - failed - duplicates if inserted is None else inserted,
        "updated": 0,
        "failed": failed,
        "duplicates": duplicates,
        **kw,
    }


def refused(*contains: str, stage: str | None = None, **kw: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"outcome": "refused", "refusal_contains": list(contains), **kw}
    if stage:
        out["stage"] = stage
    return out


def either(first: dict[str, Any], *alternatives: dict[str, Any]) -> dict[str, Any]:
    return {**first, "or": list(alternatives)} if alternatives else first


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[int], bytes]
    expect: dict[str, Any]
    group: str
    encoding: str | None = "utf-8"
    delimiter: str | None = ","
    note: str = ""


CASES: list[Case] = []


def add(
    name: str,
    group: str,
    expect: dict[str, Any],
    data: Callable[[int], bytes],
    *,
    encoding: str | None = "utf-8",
    delimiter: str | None = ",",
    note: str = "",
) -> None:
    CASES.append(Case(name, data, expect, group, encoding, delimiter, note))


def text(s: str, encoding: str = "utf-8") -> Callable[[int], bytes]:
    return lambda _limit: s.encode(encoding)


# fmt: off
# --- encodings ----------------------------------------------------------------------

BASIC = lines(HEADER, *basic_rows())
add("utf8_bom.csv", "encoding",
    imported(3, contacts=BASIC_CONTACTS),
    lambda _: codecs.BOM_UTF8 + BASIC.encode(), encoding="utf-8-sig",
    note="the BOM must not end up in the first header's name, or `email` is not found")
add("utf8_no_bom.csv", "encoding", imported(3, contacts=BASIC_CONTACTS), text(BASIC))
add("utf16le_bom.csv", "encoding",
    imported(3, contacts=BASIC_CONTACTS),
    lambda _: codecs.BOM_UTF16_LE + lines(HEADER, *basic_rows(), nl="\r\n").encode("utf-16-le"),
    encoding="utf-16", note="the BOM is checked before the NUL-byte sniff")
add("utf16be_bom.csv", "encoding",
    imported(3, contacts=BASIC_CONTACTS),
    lambda _: codecs.BOM_UTF16_BE + BASIC.encode("utf-16-be"), encoding="utf-16")
CP1252 = lines(
    HEADER,
    "zoe@example.com,Zoë,Müller,Café “Quotes” €",
    "ann@example.com,Ann,Öberg,Smörgås AB",
)
add("windows1252.csv", "encoding",
    either(
        imported(2, warning_contains="1252|encoding|windows|latin", contacts={
            "zoe@example.com": {"first_name": "Zoë", "last_name": "Müller",
                                "company": "Café “Quotes” €"},
            "ann@example.com": {"last_name": "Öberg", "company": "Smörgås AB"},
        }),
        refused("utf-8|utf8|encoding|1252"),
    ),
    text(CP1252, "cp1252"), encoding="cp1252",
    note="0x93/0x94/0x80 exist in cp1252, not in latin-1: a guess of latin-1 mangles them")
add("invalid_utf8_mid.csv", "encoding",
    either(
        imported(3, failed=1, failed_records=[2], reason_contains="utf|encod|decod|byte",
                 contacts={"zoe@example.com": {"first_name": "Zoë"},
                           "asa@example.com": {"first_name": "Åsa"}}),
        imported(3, contacts={"zoe@example.com": {"first_name": "Zoë"},
                              "bjorn@example.com": {"first_name": "Björn"},
                              "asa@example.com": {"first_name": "Åsa"}},
                 warning_contains="utf|encod|1252|latin"),
        refused("utf-8|utf8|encoding|byte"),
    ),
    lambda _: (lines("email,first_name", "zoe@example.com,Zoë").encode()
               + b"bjorn@example.com,Bj\xf6rn\n" + "asa@example.com,Åsa\n".encode()),
    encoding=None,
    note="one latin-1 byte in a UTF-8 file: never 'Bjrn' or 'Bj\\ufffdrn', never mojibake "
         "of the valid rows")


def invalid_utf8_late(_limit: int) -> bytes:
    rows = [f"user{i:04d}@example.com,Zoë{i},Ångström" for i in range(1, 1801)]
    head = lines("email,first_name,last_name", *rows).encode()
    tail = lines(*(f"tail{i}@example.com,Åsa{i},Öberg" for i in range(1, 11))).encode()
    return head + b"bjorn@example.com,Bj\xf6rn,Late\n" + tail


add("invalid_utf8_after_preview.csv", "encoding",
    either(
        imported(1811, failed=1, failed_records=[1801], reason_contains="utf|encod|decod|byte",
                 contacts={"user0001@example.com": {"first_name": "Zoë1"},
                           "tail10@example.com": {"first_name": "Åsa10"}}),
        imported(1811, contacts={"bjorn@example.com": {"first_name": "Björn"},
                                 "tail10@example.com": {"first_name": "Åsa10"}},
                 warning_contains="utf|encod|1252|latin"),
        refused("utf-8|utf8|encoding|byte"),
    ),
    invalid_utf8_late, encoding=None,
    note="the preview (64 KB) is clean UTF-8; the bad byte comes after it, at record 1801")

# --- line endings -------------------------------------------------------------------

THREE = ["a@example.com,Ann,Lee,Acme", "b@example.com,Bob,Ng,Beta", "c@example.com,Cy,Ho,Gamma"]
THREE_EMAILS = ["a@example.com", "b@example.com", "c@example.com"]
add("crlf.csv", "line endings", imported(3, emails=THREE_EMAILS),
    text(lines(HEADER, *THREE, nl="\r\n")))
add("lf.csv", "line endings", imported(3, emails=THREE_EMAILS), text(lines(HEADER, *THREE)))
add("cr_only.csv", "line endings",
    imported(3, emails=THREE_EMAILS, contacts={"c@example.com": {"company": "Gamma"}}),
    text(lines(HEADER, *THREE, nl="\r")), note="old Mac Excel: CR alone ends a line")
add("mixed_endings.csv", "line endings",
    imported(3, emails=THREE_EMAILS, contacts={"a@example.com": {"company": "Acme"},
                                               "b@example.com": {"company": "Beta"}}),
    text(f"{HEADER}\r\n{THREE[0]}\n{THREE[1]}\r{THREE[2]}\r\n"))
add("no_final_newline.csv", "line endings",
    imported(3, emails=THREE_EMAILS, contacts={"c@example.com": {"company": "Gamma"}}),
    text(lines(HEADER, *THREE, final=False)))
add("blank_lines.csv", "line endings", imported(3, emails=THREE_EMAILS),
    text(f"{HEADER}\n\n{THREE[0]}\n\n\n{THREE[1]}\r\n\r\n{THREE[2]}\n\n"),
    note="blank lines are not rows")
add("delimiter_only_rows.csv", "line endings",
    either(imported(2, emails=["a@example.com", "b@example.com"]),
           imported(4, failed=2, failed_records=[2, 3], reason_contains="email",
                    emails=["a@example.com", "b@example.com"])),
    text(lines(HEADER, THREE[0], ",,,", ",,,", THREE[1])),
    note="Excel writes ',,,' for formatted empty rows: skipped like blank lines, or failed "
         "rows for want of an email")

# --- quoting --------------------------------------------------------------------------

add("quoted_commas.csv", "quoting",
    imported(2, contacts={"a@example.com": {"company": "Acme, Inc."},
                          "b@example.com": {"last_name": "Ng, Jr."}}),
    text(lines(HEADER, 'a@example.com,Ann,Lee,"Acme, Inc."', 'b@example.com,Bob,"Ng, Jr.",Beta')))
add("quoted_newlines.csv", "quoting",
    imported(3, failed=1, failed_records=[2], reason_contains="email",
             values_present=["line one\nline two\nline three"],
             contacts={"c@example.com": {"first_name": "Cy"}}),
    text(lines("email,first_name,notes", 'a@example.com,Ann,"line one\nline two\nline three"',
               "not-an-email,Bad,x", 'c@example.com,Cy,"x, y"')),
    note="record 2 is on line 5: its row number must be 2 (or 3 counting the header), not 5")
add("doubled_quotes.csv", "quoting",
    imported(2, contacts={"a@example.com": {"company": 'The "Best" Co'},
                          "b@example.com": {"first_name": '"Bobby"'}}),
    text(lines(HEADER, 'a@example.com,Ann,Lee,"The ""Best"" Co"',
               'b@example.com,"""Bobby""",Ng,Beta')))
add("unterminated_quote_end.csv", "quoting",
    either(imported(2, failed=1, failed_records=[2], reason_contains="quot|end of|unterminated",
                    emails=["a@example.com"]),
           refused("quot|unterminated|end of")),
    text(lines(HEADER, "a@example.com,Ann,Lee,Acme", 'b@example.com,Bob,Ng,"Unclosed company')),
    delimiter=None, note="a clear error, not the rest of the file swallowed into one field")
add("unterminated_quote_mid.csv", "quoting",
    either(imported(4, failed=1, failed_records=[2], reason_contains="quot|unterminated",
                    emails=["a@example.com", "c@example.com", "d@example.com"],
                    no_newlines=True),
           refused("quot|unterminated|end of")),
    text(lines(HEADER, "a@example.com,Ann,Lee,Acme", 'b@example.com,Bob,Ng,"Unclosed',
               "c@example.com,Cy,Ho,Gamma", "d@example.com,Di,Wu,Delta")),
    delimiter=None,
    note="a quote opened on record 2 never closes: Python's csv (strict or not) reads c "
         "and d into that field up to the end of the file. Either the reader recovers at the "
         "line after the bad quote (b fails, c and d import) or the file is refused; c and d "
         "are never lost inside one failed row")
add("text_after_closing_quote.csv", "quoting",
    either(imported(2, failed=1, failed_records=[1], reason_contains="quot|expected",
                    emails=["b@example.com"]),
           refused("quot")),
    text(lines(HEADER, 'a@example.com,Ann,Lee,"Acme" Inc', "b@example.com,Bob,Ng,Beta")),
    delimiter=None, note='"Acme" Inc: strict csv refuses the row rather than guess "Acme Inc"')
add("stray_quotes_unquoted.csv", "quoting",
    imported(2, contacts={"a@example.com": {"first_name": 'Dwayne "The Rock"'},
                          "b@example.com": {"last_name": 'O"Neal', "company": "5'11\" Tall"}}),
    text(lines(HEADER, 'a@example.com,Dwayne "The Rock",Johnson,Acme',
               "b@example.com,Shaq,O\"Neal,5'11\" Tall")),
    note="a quote inside an unquoted field is an ordinary character")

# --- shape ----------------------------------------------------------------------------

add("ragged_short_rows.csv", "shape",
    imported(3, contacts={"a@example.com": {"company": "Acme"},
                          "b@example.com": {"first_name": "Bob"}}),
    text(lines(HEADER, "a@example.com,Ann,Lee,Acme", "b@example.com,Bob", "c@example.com")),
    delimiter=None, note="missing trailing cells are empty values")
add("ragged_long_rows.csv", "shape",
    either(imported(3, failed=1, failed_records=[2], reason_contains="cell|column|field|value",
                    emails=["a@example.com", "c@example.com"]),
           imported(3, values_present=["EXTRA1", "EXTRA2"])),
    text(lines("email,first_name", "a@example.com,Ann", "b@example.com,Bob,EXTRA1,EXTRA2",
               "c@example.com,Cy")),
    delimiter=None, note="extra non-empty cells: a row failure, or kept; never dropped")
add("duplicate_headers.csv", "shape",
    imported(2, values_present=["first note", "second note", "third", "fourth"]),
    text(lines("email,first_name,note,note", "a@example.com,Ann,first note,second note",
               "b@example.com,Bob,third,fourth")),
    note="columns map by index: DictReader would silently keep only the last 'note'")
add("empty_header_cells.csv", "shape",
    either(imported(2, values_present=["hidden one", "hidden two"],
                    contacts={"a@example.com": {"company": "Acme"}}),
           refused("header|column|empty|name")),
    text(lines("email,,company", "a@example.com,hidden one,Acme", "b@example.com,hidden two,Beta")),
    note="data under an empty header cell is kept (a generated column name) or refused")
add("header_only.csv", "shape",
    either(imported(0), refused("no rows|no data|empty|header only|no contacts")),
    text(lines(HEADER)))
add("empty.csv", "shape", refused("empty|no data|no header|0 bytes", stage="upload"),
    lambda _: b"", delimiter=None)
add("single_column.csv", "shape",
    imported(2, emails=["a@example.com", "b@example.com"]),
    text(lines("email", "a@example.com", "b@example.com")))
WIDE = ["email", *(f"field_{i:04d}" for i in range(1, 2000))]
add("columns_2000.csv", "shape",
    imported(3, values_present=["r1c1999", "r3c1000"]),
    text(lines(",".join(WIDE), *(",".join([f"w{r}@example.com",
                                           *(f"r{r}c{i}" for i in range(1, 2000))])
                                 for r in (1, 2, 3)))))
HUGE_HEADER = ["email", *(f"custom_column_with_a_long_name_{i:05d}" for i in range(1, 2200))]
add("header_over_64kb.csv", "shape",
    either(imported(2, emails=["a@example.com", "b@example.com"]),
           refused("header|64|preview|too (wide|long|large)")),
    text(lines(",".join(HUGE_HEADER), "a@example.com", "b@example.com")),
    delimiter=None, note="the header alone is wider than the 64 KB preview")
add("cell_5mb.csv", "shape",
    imported(3, failed=1, failed_records=[2], reason_contains="field|limit|large|long|size",
             emails=["a@example.com", "c@example.com"]),
    lambda _: (lines("email,first_name,notes", "a@example.com,Ann,ok").encode()
               + b"b@example.com,Bob," + b"x" * (5 * MB) + b"\n"
               + lines("c@example.com,Cy,ok").encode()),
    delimiter=None, note="over the explicit field-size limit: a row failure, not a crash")
add("semicolon.csv", "shape",
    imported(2, contacts={"a@example.com": {"company": "Acme, Inc"}}),
    text(lines("email;first_name;last_name;company", "a@example.com;Ann;Lee;Acme, Inc",
               "b@example.com;Bob;Ng;Beta")), delimiter=";")
add("tab.csv", "shape",
    imported(2, contacts={"a@example.com": {"company": "Acme, Inc"}}),
    text(lines("email\tfirst_name\tlast_name\tcompany", "a@example.com\tAnn\tLee\tAcme, Inc",
               "b@example.com\tBob\tNg\tBeta")), delimiter="\t")
add("pipe.csv", "shape",
    imported(2, contacts={"a@example.com": {"company": "Acme, Inc"}}),
    text(lines("email|first_name|last_name|company", "a@example.com|Ann|Lee|Acme, Inc",
               "b@example.com|Bob|Ng|Beta")), delimiter="|")
add("excel_sep_line.csv", "shape",
    imported(2, contacts={"a@example.com": {"first_name": "Ann", "company": "Acme, Inc"}}),
    text(lines("sep=;", "email;first_name;last_name;company", "a@example.com;Ann;Lee;Acme, Inc",
               "b@example.com;Bob;Ng;Beta", nl="\r\n")),
    delimiter=None, note="Excel's sep=; line names the delimiter and is not the header")
add("trailing_delimiters.csv", "shape",
    imported(2, contacts={"a@example.com": {"first_name": "Ann"},
                          "b@example.com": {"first_name": "Bob"}}),
    text(lines("email,first_name,", "a@example.com,Ann,", "b@example.com,Bob,,,")),
    delimiter=None, note="empty trailing cells, even more of them than the header has")

# --- emails ---------------------------------------------------------------------------

add("email_upper_case.csv", "emails",
    imported(3, duplicates=1, emails=["ann@example.com", "bob.smith@example.org"]),
    text(lines("email,first_name", "ANN@EXAMPLE.COM,Ann", "Bob.Smith@Example.Org,Bob",
               "ann@example.com,Ann again")),
    note="lower-cased before dedup: rows 1 and 3 are one contact")
add("email_spaces.csv", "emails",
    imported(3, duplicates=1, emails=["ann@example.com", "bob@example.com"]),
    text(lines("email,first_name", "  ann@example.com  ,Ann", '" bob@example.com",Bob',
               "ann@example.com,Ann again")))
add("email_plus_tags.csv", "emails",
    imported(2, emails=["ann+news@example.com", "ann@example.com"]),
    text(lines("email,first_name", "ann+news@example.com,Ann", "ann@example.com,Ann")),
    note="plus tags are kept: they are different addresses to the provider")
add("email_unicode_local.csv", "emails",
    either(imported(3, duplicates=1, emails=["josé@example.com", "用户@example.com"]),
           imported(3, failed=3, failed_records=[1, 2, 3], reason_contains="email")),
    text(lines("email,first_name", "josé@example.com,José", "用户@example.com,Yonghu",
               "JOSÉ@example.com,José again")))
add("email_idn_domain.csv", "emails",
    either(imported(3, duplicates=1, emails=["user@bücher.de", "info@müller.com"]),
           imported(3, failed=3, failed_records=[1, 2, 3], reason_contains="email")),
    text(lines("email,first_name", "user@bücher.de,U", "info@müller.com,I",
               "USER@xn--bcher-kva.de,U again")),
    note="xn--bcher-kva.de is bücher.de in punycode: the same address, a duplicate")
INVALID = ["plainaddress", "a@", "@example.com", "a b@example.com", "a@@example.com",
           "a@example", "a@-example.com", "a..b@example.com"]
add("email_invalid.csv", "emails",
    imported(9, failed=8, failed_records=list(range(1, 9)), reason_contains="email",
             emails=["ok@example.com"]),
    text(lines("email,first_name", *(f"{e},X" for e in INVALID), "ok@example.com,Ok")))
add("email_empty.csv", "emails",
    imported(4, failed=3, failed_records=[1, 2, 3], reason_contains="email|missing|required|empty",
             emails=["ok@example.com"]),
    text(lines("email,first_name", ",No email", "   ,Spaces only", '"",Quoted empty',
               "ok@example.com,Ok")))
add("email_same_10000_times.csv", "emails",
    imported(10_000, inserted=1, duplicates=9_999, emails=["same@example.com"]),
    text(lines("email,first_name", *(f"same@example.com,Name {i}" for i in range(10_000)))),
    note="one contact; every other row a duplicate")

# --- hostile --------------------------------------------------------------------------


def nul_mid(_limit: int) -> bytes:
    rows = [f"user{i:04d}@example.com,First{i},Last{i},Company{i}" for i in range(1, 301)]
    rows[249] = "user0250@example.com,Ann\x00ie,Last250,Company250"
    return lines(HEADER, *rows).encode()


add("nul_mid_file.csv", "hostile",
    imported(300, failed=1, failed_records=[250], reason_contains="nul|null|0x00|\\x00|\\u0000"),
    nul_mid, note="past the 8 KB binary sniff; PostgreSQL refuses 0x00 in text")
add("nul_in_first_8kb.csv", "hostile",
    either(refused("binary|nul|null", stage="upload"),
           imported(2, failed=1, failed_records=[1], reason_contains="nul|null|0x00")),
    text(lines(HEADER, "a@example.com,Ann\x00ie,Lee,Acme", "b@example.com,Bob,Ng,Beta")))


def xlsx(_limit: int) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        parts = {
            "[Content_Types].xml": '<?xml version="1.0"?><Types xmlns="http://schemas.'
            'openxmlformats.org/package/2006/content-types"/>',
            "xl/workbook.xml": "<workbook/>",
            "xl/worksheets/sheet1.xml": '<worksheet><sheetData><row><c t="inlineStr"><is>'
            "<t>email</t></is></c></row></sheetData></worksheet>",
        }
        for name, body in parts.items():
            z.writestr(zipfile.ZipInfo(name, (2024, 1, 1, 0, 0, 0)), body)
    return buf.getvalue()


def pdf(_limit: int) -> bytes:
    stream = zlib.compress(b"BT /F1 12 Tf 72 712 Td (email,first_name) Tj ET" * 20)
    head = f"1 0 obj\n<< /Length {len(stream)} /Filter /FlateDecode >>\nstream\n".encode()
    return (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n" + head + stream
            + b"\nendstream\nendobj\ntrailer\n<<>>\n%%EOF\n")


def png(_limit: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    raw = b"".join(b"\x00" + b"\xff\x00\x00" * 4 for _ in range(4))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 4, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


BINARY_HINT = "csv"
add("xlsx_named.csv", "hostile", refused("binary|xlsx|excel|zip|spreadsheet", BINARY_HINT,
                                         stage="upload"), xlsx, encoding=None, delimiter=None)
add("pdf_named.csv", "hostile", refused("binary|pdf", BINARY_HINT, stage="upload"), pdf,
    encoding=None, delimiter=None)
add("png_named.csv", "hostile", refused("binary|png|image", BINARY_HINT, stage="upload"), png,
    encoding=None, delimiter=None)
add("gzip_named.csv", "hostile",
    either(refused("binary|gzip|compress", stage="upload"), imported(3, emails=THREE_EMAILS)),
    lambda _: gzip.compress(lines(HEADER, *THREE).encode(), mtime=0),
    encoding=None, delimiter=None, note="refused, or transparently decompressed")


def at_limit(limit: int) -> bytes:
    body = lines("email,first_name,notes", "a@example.com,Ann,").encode()
    # The padding sits in the last row's notes, so the file is exactly `limit` bytes.
    pad = limit - len(body) - len(b"\n") - len(b"b@example.com,Bob,")
    return body + b"b@example.com,Bob," + b"p" * pad + b"\n"


add("size_at_limit.csv", "hostile",
    imported(2, emails=["a@example.com", "b@example.com"], settings={"upload_max_bytes": "LIMIT"}),
    at_limit, note="exactly upload_max_bytes bytes")
add("size_over_limit.csv", "hostile",
    refused("limit|too large|exceed|maximum|larger", stage="upload",
            settings={"upload_max_bytes": "LIMIT"}),
    lambda limit: at_limit(limit + 1), note="one byte over upload_max_bytes")
FORMULAS = {
    "a@example.com": {"first_name": '=HYPERLINK("http://evil.example","click")',
                      "last_name": "-2+3", "company": "@SUM(A1:A2)"},
    "b@example.com": {"first_name": "+cmd|' /C calc'!A0", "company": "=1+1"},
}
add("formula_payloads.csv", "hostile",
    imported(2, contacts=FORMULAS),
    text(lines(HEADER, 'a@example.com,"=HYPERLINK(""http://evil.example"",""click"")",-2+3,'
               "@SUM(A1:A2)", "b@example.com,+cmd|' /C calc'!A0,Ng,=1+1")),
    note="stored verbatim; neutralised on export, not on import")
add("sql_and_script.csv", "hostile",
    imported(2, contacts={
        "a@example.com": {"first_name": "Robert'); DROP TABLE contacts;--",
                          "company": "<script>alert('x')</script>"},
        "b@example.com": {"first_name": "1' OR '1'='1", "last_name": "\"; DELETE FROM users; --"},
    }),
    text(lines(HEADER, "a@example.com,Robert'); DROP TABLE contacts;--,Lee,"
               "<script>alert('x')</script>",
               "b@example.com,1' OR '1'='1,\"\"\"; DELETE FROM users; --\",Beta")),
    note="stored verbatim through parameterised SQL")
add("numbers_as_text.csv", "hostile",
    imported(2, contacts={"a@example.com": {"phone": "00123"}, "b@example.com": {"phone": "1E5"}},
             values_present=["00501", "1E5", "0.10", "1.0"]),
    text(lines("email,phone,zip,score", "a@example.com,00123,00501,0.10",
               "b@example.com,1E5,07030,1.0")),
    note="kept as text: no 123, 100000.0 or 0.1")
add("long_line_no_delimiter.csv", "hostile",
    imported(3, failed=1, failed_records=[2], reason_contains="email",
             emails=["a@example.com", "b@example.com"]),
    text(lines("email,first_name", "a@example.com,Ann", "y" * 200_000, "b@example.com,Bob")),
    delimiter=None, note="a 200 KB line with no delimiter: one cell, not an email")


# --- issue 15: real-world files, a class per rule ----------------------------------------
# verbatim: custom fields keep every character, standard fields are trimmed.
add("verbatim_custom_fields.csv", "verbatim",
    imported(3, contacts={"a@example.com": {"first_name": "Ann", "company": "Acme"}},
             custom={"a@example.com": {"note": "  padded\t", "code": "  bare  "},
                     "b@example.com": {"note": " ", "code": 'say "hi"'},
                     "c@example.com": {"note": "one\r\ntwo\nthree"}}),
    text(lines("email,first_name,company,note,code",
               'a@example.com,  Ann\t,\tAcme ,"  padded\t",  bare  ',
               'b@example.com,Bob,Beta," ",say "hi"',
               'c@example.com,Cy,Gamma,"one\r\ntwo\nthree",')),
    note="spaces, tabs, a lone space, quotes in an unquoted field, line breaks: as written; "
         "an empty cell is no key at all")
# records: a quoted line break of any kind, whatever the file's own line ending.
add("quoted_bare_cr_in_crlf_file.csv", "records",
    imported(3, custom={"a@example.com": {"note": "one\rtwo"},
                        "b@example.com": {"note": "x\ny\r"},
                        "c@example.com": {"note": "plain"}}),
    text(lines("email,note", 'a@example.com,"one\rtwo"', 'b@example.com,"x\ny\r"',
               "c@example.com,plain", nl="\r\n")))
add("quoted_crlf_in_cr_file.csv", "records",
    imported(3, custom={"a@example.com": {"note": "one\r\ntwo"},
                        "b@example.com": {"note": "\n"}, "c@example.com": {"note": "z"}}),
    text(lines("email,note", 'a@example.com,"one\r\ntwo"', 'b@example.com,"\n"',
               "c@example.com,z", nl="\r")))
NOTE_1500 = "\n".join(f"n{i}" for i in range(1500))
add("closed_note_1500_lines.csv", "records",
    imported(2, custom={"a@example.com": {"note": NOTE_1500}, "b@example.com": {"note": "x"}}),
    text(lines("email,note", f'a@example.com,"{NOTE_1500}"', "b@example.com,x")),
    note="issue 19 finding 7: the inside of a closed quoted field never becomes rows")
# header: found past blank lines, sep= and a preamble; names made unique.
add("blank_lines_and_sep_before_header.csv", "header",
    imported(2, contacts={"a@example.com": {"first_name": "Ann", "company": "Acme, Inc"}}),
    text("\r\n\r\nsep=;\r\n" + lines("email;first_name;company", "a@example.com;Ann;Acme, Inc",
                                       "b@example.com;Bob;Beta", nl="\r\n")),
    delimiter=None)
add("linkedin_connections.csv", "header",
    imported(2, contacts={"ann@example.com": {"first_name": "Ann", "last_name": "Lee",
                                              "company": "Acme"}},
             custom={"ann@example.com": {"URL": "https://www.linkedin.com/in/ann",
                                         "Position": "CTO", "Connected On": "01 Jan 2024"}},
             emails=["ann@example.com", "bo@example.com"], warning_contains="line 4"),
    text(lines("Notes:",
               '"When exporting your connection data, you may notice that some of the email '
               "addresses are missing. You will only see email addresses for connections who "
               'have allowed their connections to see or download their email address."', "",
               "First Name,Last Name,URL,Email Address,Company,Position,Connected On",
               "Ann,Lee,https://www.linkedin.com/in/ann,ann@example.com,Acme,CTO,01 Jan 2024",
               "Bo,Ek,https://www.linkedin.com/in/bo,bo@example.com,Beta,CEO,02 Feb 2024")),
    delimiter=None, note="two lines of notes and a blank line before the real header")
add("duplicate_header_names_unique.csv", "header",
    imported(1, custom={"a@example.com": {"a": "1", "a_3": "2", "a_2": "3"}}),
    text(lines("email,a,a,a_2", "a@example.com,1,2,3")),
    note="a, a, a_2: the second a becomes a_3, never the real column a_2")
add("semicolons_with_commas_in_names.csv", "header",
    imported(2, contacts={"a@example.com": {"last_name": "Lee, Jr."}},
             custom={"a@example.com": {"Notes, misc": "x, y, z"}}),
    text(lines("email;last_name;Notes, misc", "a@example.com;Lee, Jr.;x, y, z",
               "b@example.com;Ng;w")), delimiter=";",
    note="more commas than semicolons in the header: the rows decide the delimiter")
# legacy encodings: detected by charset-normalizer, decoded exactly.
for enc, name, first in (("cp1251", "Иван", "Ольга"), ("shift_jis", "山田太郎", "佐藤花子"),
                         ("gb18030", "王小明", "李华")):
    add(f"legacy_{enc}.csv", "legacy encodings",
        imported(2, warning_contains=enc, contacts={
            "a@example.com": {"first_name": name}, "b@example.com": {"first_name": first}}),
        text(lines("email,first_name", f"a@example.com,{name}", f"b@example.com,{first}"), enc),
        encoding=enc)
add("utf16le_no_bom.csv", "legacy encodings",
    imported(3, contacts=BASIC_CONTACTS),
    lambda _: BASIC.encode("utf-16-le"), encoding="utf-16-le",
    note="no BOM: the NUL in every other byte says UTF-16, not binary")
# email-validator's verdicts.
INVISIBLE = ["ann\u200b@example.com", "\ufeffbob@example.com", "c\u202eo@example.com",
             "d\u00ad@example.com"]
add("email_invisible_characters.csv", "email validator",
    imported(5, failed=4, failed_records=[1, 2, 3, 4], reason_contains="email",
             emails=["ok@example.com"]),
    text(lines("email,first_name", *(f"{e},X" for e in INVISIBLE), "ok@example.com,Ok")),
    note="zero-width, BOM, bidi override, soft hyphen: the same person must not become two")
SPECIAL = ["a@x.localhost", "b@x.invalid", "c@x.test", "d@x.onion", "e@1.in-addr.arpa",
           "f@printer.local", "g@xn--0.com", "h@under_score.com"]
add("email_special_use_domains.csv", "email validator",
    imported(9, failed=8, failed_records=list(range(1, 9)), reason_contains="email",
             emails=["ok@example.com"]),
    text(lines("email,first_name", *(f"{e},X" for e in SPECIAL), "ok@example.com,Ok")))
add("email_nfc_one_contact.csv", "email validator",
    imported(2, duplicates=1, emails=["josé@example.com"],
             contacts={"josé@example.com": {"first_name": "Second"}}),
    text(lines("email,first_name", "jose\u0301@example.com,First", "José@Example.com,Second")),
    note="NFD and NFC spellings of one address are one contact (the last row wins)")
# exports people have.
add("google_contacts.csv", "exports",
    imported(2, contacts={"ann@example.com": {"first_name": "Ann", "company": "Acme",
                                              "phone": "+33 1 23"}},
             custom={"ann@example.com": {"E-mail 1 - Label": "* Home",
                                         "E-mail 1 - Value":
                                             "ann@example.com ::: ann@work.example.com",
                                         "Phone 1 - Label": "Mobile"},
                     "bo@example.com": {"E-mail 2 - Label": "Work",
                                        "E-mail 2 - Value": "bo@example.com"}},
             emails=["ann@example.com", "bo@example.com"]),
    text(lines("First Name,Last Name,Organization Name,E-mail 1 - Label,E-mail 1 - Value,"
               "E-mail 2 - Label,E-mail 2 - Value,Phone 1 - Label,Phone 1 - Value",
               "Ann,Lee,Acme,* Home,ann@example.com ::: ann@work.example.com,,,Mobile,+33 1 23",
               "Bo,Ek,Beta,,,Work,bo@example.com,,")),
    delimiter=None, note="' ::: ' lists: the first valid address; a second column as fallback")
add("outlook_french.csv", "exports",
    imported(1, contacts={"zoe@example.com": {"first_name": "Zoé", "last_name": "Dupont",
                                              "company": "Société X", "phone": "01 02"}}),
    text(lines('"Titre","Prénom","Nom","Société","Téléphone bureau","Adresse de messagerie"',
               '"Mme","Zoé","Dupont","Société X","01 02","zoe@example.com"'), "cp1252"),
    encoding="cp1252", delimiter=None, note="Outlook FR, written in cp1252 as it does")

# vCard: the same pipeline, a fixed mapping.
VCF = ("BEGIN:VCARD\r\nVERSION:3.0\r\nN:Lee;Ann;;;\r\nFN:Ann Lee\r\nORG:Acme;Sales\r\n"
       "EMAIL;type=INTERNET;type=pref:ann@example.com\r\nEMAIL;type=WORK:ann@work.example.com"
       "\r\nTEL;type=CELL:+1 555 0100\r\nNOTE:met at the fair\\, 2023\r\n"
       "PHOTO;ENCODING=b;TYPE=JPEG:/9j/4AAQ\r\n END:VCARD is not this line\r\nEND:VCARD\r\n"
       "BEGIN:VCARD\r\nVERSION:4.0\r\nFN:Bob Ng\r\nEMAIL:bob@example.com\r\nEND:VCARD\r\n"
       "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:No Email\r\nEND:VCARD\r\n")
add("contacts.vcf", "vcard",
    imported(3, failed=1, failed_records=[3], reason_contains="email",
             contacts={"ann@example.com": {"first_name": "Ann", "last_name": "Lee",
                                           "company": "Acme", "phone": "+1 555 0100"},
                       "bob@example.com": {"first_name": "Bob Ng"}},
             custom={"ann@example.com": {"Email 2": "ann@work.example.com",
                                         "Email 2 Label": "work", "Phone Label": "cell",
                                         "Full Name": "Ann Lee", "Department": "Sales",
                                         "Note": "met at the fair, 2023"},
                     "bob@example.com": {"Full Name": "Bob Ng"}}),
    text(VCF), delimiter=None,
    note="Apple 3.0 and 4.0 cards; the preferred email is the email, the others numbered "
         "custom fields; the photo (and its folded line) is not imported")


# fmt: on
# --- the manifest -----------------------------------------------------------------------


def _resolve(expect: dict[str, Any], limit: int) -> dict[str, Any]:
    out = {k: v for k, v in expect.items() if k != "or"}
    if "settings" in out:
        out["settings"] = {k: (limit if v == "LIMIT" else v) for k, v in out["settings"].items()}
    if "or" in expect:
        out["or"] = [_resolve(alt, limit) for alt in expect["or"]]
    return out


def manifest(limit: int = DEFAULT_LIMIT) -> dict[str, dict[str, Any]]:
    out = {}
    for c in CASES:
        entry = _resolve(c.expect, limit)
        entry.update(group=c.group, encoding=c.encoding, delimiter=c.delimiter, note=c.note)
        out[c.name] = entry
    return out


MANIFEST = manifest()


def generate(directory: Path, limit: int = DEFAULT_LIMIT) -> dict[str, dict[str, Any]]:
    directory.mkdir(parents=True, exist_ok=True)
    for c in CASES:
        (directory / c.name).write_bytes(c.build(limit))
    entries = manifest(limit)
    (directory / "manifest.json").write_text(json.dumps(entries, indent=1, ensure_ascii=False))
    return entries


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="python -m tests.corpus.generate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("directory", type=Path)
    p.add_argument(
        "--limit",
        type=int,
        default=DEFAULT_LIMIT,
        help="the upload byte limit the size cases are built around",
    )
    args = p.parse_args(argv)
    entries = generate(args.directory, args.limit)
    print(f"wrote {len(entries)} files and manifest.json to {args.directory}")


if __name__ == "__main__":
    main()
