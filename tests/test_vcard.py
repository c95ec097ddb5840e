"""vCard files through the same pipeline as a CSV: preview, chunks, dedup, exact counts."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import time
from pathlib import Path

import asyncpg
import psutil
from temporalio.client import Client

from folksjobs.imports import chunker, vcard
from folksjobs.imports.contacts import Mapper
from folksjobs.imports.csvstream import detect_format, iter_records, open_text
from folksjobs.imports.mapping import suggest_mapping
from tests.conftest import Stack, Tenant, make_settings, running_worker
from tests.importing import contacts, import_bytes

VCARDS = Path(__file__).parent / "vcards"

APPLE = """BEGIN:VCARD\r
VERSION:3.0\r
PRODID:-//Apple Inc.//macOS 14.0//EN\r
N:Lee;Ann;;;\r
FN:Ann Lee\r
ORG:Acme;Sales;\r
EMAIL;type=INTERNET;type=HOME;type=pref:ann@example.com\r
EMAIL;type=INTERNET;type=WORK:ann@work.example.com\r
TEL;type=CELL;type=VOICE;type=pref:+1 555 0100\r
TEL;type=WORK:+1 555 0199\r
item1.ADR;type=HOME;type=pref:;;1 Main St;Springfield;IL;62701;USA\r
NOTE:met at the fair\\, 2023\\nfollow up\r
PHOTO;ENCODING=b;TYPE=JPEG:/9j/4AAQSkZJRgABAQAAAQABAAD\r
 more+base64+that+is+not+even+valid\r
X-SOCIALPROFILE;type=twitter:https://twitter.com/ann\r
END:VCARD\r
"""
GOOGLE_V3 = """BEGIN:VCARD
VERSION:3.0
FN:Zoë Ångström
N:Ångström;Zoë;;;
EMAIL;TYPE=INTERNET;TYPE=HOME:zoe@example.com
TEL;TYPE=CELL:+46 70 123
ORG:Café AB
TITLE:Chef
BDAY:1990-01-01
CATEGORIES:myContacts,Friends
END:VCARD
"""
OUTLOOK_V4 = """BEGIN:VCARD
VERSION:4.0
FN:Bob Ng
EMAIL;TYPE=work:BOB@Example.com
TEL;VALUE=uri;TYPE="voice,cell":tel:+1-555-0101
URL:https://bob.example.com
END:VCARD
"""
BROKEN = """BEGIN:VCARD
VERSION:3.0
N:Broken;
this line has no colon
END:VCARD
"""
NO_EMAIL = """BEGIN:VCARD
VERSION:3.0
FN:Nobody
END:VCARD
"""


def cards(data: bytes) -> list[list[str] | None]:
    fmt = detect_format(data)
    assert fmt.delimiter == vcard.VCARD
    recs = list(iter_records(open_text(io.BytesIO(data), fmt), fmt, 1 << 20))
    assert recs[0].cells == vcard.HEADER
    return [r.cells if r.cells is not None else [f"!{r.error}"] for r in recs[1:]]


def by_header(cells: list[str] | None) -> dict[str, str]:
    assert cells is not None
    return {h: v for h, v in zip(vcard.HEADER, cells, strict=True) if v}


def test_cards_of_apple_google_and_outlook_become_rows() -> None:
    data = (APPLE + GOOGLE_V3 + OUTLOOK_V4).encode()
    ann, zoe, bob = cards(data)
    assert by_header(ann) == {
        "Email": "ann@example.com", "Email Label": "home", "First Name": "Ann",
        "Last Name": "Lee", "Company": "Acme", "Phone": "+1 555 0100", "Phone Label": "cell",
        "Full Name": "Ann Lee", "Department": "Sales", "Email 2": "ann@work.example.com",
        "Email 2 Label": "work", "Phone 2": "+1 555 0199", "Phone 2 Label": "work",
        "Note": "met at the fair, 2023\nfollow up",
        "Address": "1 Main St\nSpringfield, IL 62701\nUSA",
        "Other": "X-SOCIALPROFILE: https://twitter.com/ann",
    }  # fmt: skip
    assert by_header(zoe)["Categories"] == "myContacts, Friends"
    assert by_header(zoe)["Title"] == "Chef" and by_header(zoe)["Birthday"] == "1990-01-01"
    assert by_header(bob) == {
        "Email": "BOB@Example.com", "Email Label": "work", "First Name": "Bob Ng",
        "Phone": "+1-555-0101", "Phone Label": "cell", "Full Name": "Bob Ng",
        "URL": "https://bob.example.com",
    }  # fmt: skip


def card_file(name: str) -> list[dict[str, str]]:
    return [by_header(c) for c in cards((VCARDS / f"{name}.vcf").read_bytes())]


def test_apple_cards_preferred_email_first_and_labels_out_of_their_markup() -> None:
    johnny, ngozi = card_file("apple")
    assert johnny == {
        "Email": "johnny@example.com", "Email Label": "home",  # type=pref, though second
        "Email 2": "j.appleseed@orchard.example", "Email 2 Label": "work",
        "Email 3": "johnny.other@example.org", "Email 3 Label": "Other",
        "Phone": "+1 (408) 555-0101", "Phone Label": "cell",
        "Phone 2": "+1 408 555 0102", "Phone 2 Label": "work",
        "Phone 3": "+1 408 555 0199", "Phone 3 Label": "Studio",
        "First Name": "Johnny", "Last Name": "Appleseed", "Full Name": "Johnny Appleseed",
        "Company": "Orchard Tools", "Department": "Research", "Title": "Engineer",
        "Note": "Met at the orchard fair, 2023\nfollow up in spring",
        "URL": "https://orchard.example",
        "Address": "1 Orchard Way\nCupertino, CA 95014\nUnited States",
        "Birthday": "1970-04-01", "Other": "X-ABRELATEDNAMES (Spouse): Jane Appleseed",
    }  # fmt: skip
    assert (ngozi["Email Label"], ngozi["Phone Label"]) == ("Other", "Mobile")
    assert not any("_$!<" in v or "X-ABLABEL" in v for v in johnny.values())


def test_google_cards_keep_custom_labels_and_unescape_urls() -> None:
    maria, kenji = card_file("google")
    assert (maria["Email"], maria["Email 2"], maria["Email 3"]) == (
        "maria@example.com", "m.garcia@acme.example", "maria.gamer@example.org",
    )  # fmt: skip
    assert (maria["Email Label"], maria["Email 2 Label"], maria["Email 3 Label"]) == (
        "home", "work", "Gaming",
    )  # fmt: skip
    assert (maria["Phone 3"], maria["Phone 3 Label"]) == ("+34 910 000 003", "Studio")
    assert maria["URL"] == "https://maria.example.com" and "Other" not in maria
    assert kenji == {
        "Email": "kenji@example.jp", "Phone": "+81 90 0000 0000", "Phone Label": "cell",
        "First Name": "Kenji", "Last Name": "Sato", "Full Name": "Kenji Sato",
        "Categories": "myContacts",
    }  # fmt: skip


def test_outlook_21_cards_read_bare_types_and_drop_the_card_design() -> None:
    [bob] = card_file("outlook")
    assert bob == {
        "Email": "bob.ng@contoso.example", "Email 2": "bob@home.example",  # PREF, not first
        "Phone": "+1 (425) 555-0100", "Phone Label": "work",
        "Phone 2": "+1 (425) 555-0101", "Phone 2 Label": "cell",
        "Phone 3": "+1 (425) 555-0102", "Phone 3 Label": "home",
        "Phone 4": "+1 (425) 555-0109", "Phone 4 Label": "work, fax",
        "First Name": "Bob", "Last Name": "Ng", "Full Name": "Bob Ng",
        "Company": "Contoso Ltd", "Department": "Sales", "Title": "Account Manager",
        "URL": "https://contoso.example",
        "Address": "One Contoso Way\nRedmond, WA 98052\nUnited States of America",
    }  # fmt: skip


def test_more_than_five_emails_or_phones_are_kept_with_their_labels() -> None:
    lines = [f"EMAIL;TYPE=work:e{i}@example.com" for i in range(7)]
    lines += [f"item{i}.TEL:+1 555 010{i}\nitem{i}.X-ABLABEL:_$!<Main>!$_" for i in range(7)]
    card = "BEGIN:VCARD\nVERSION:3.0\nFN:Many\n" + "\n".join(lines) + "\nEND:VCARD\n"
    [many] = [by_header(c) for c in cards(card.encode())]
    assert [many["Email"]] + [many[f"Email {n}"] for n in range(2, 6)] == [
        f"e{i}@example.com" for i in range(5)
    ]
    assert many["Other"] == "EMAIL (work): e5@example.com\nEMAIL (work): e6@example.com"
    assert many["Phone 5 Label"] == "Main"
    assert many["Other Phones"] == "PHONE (Main): +1 555 0105\nPHONE (Main): +1 555 0106"


def test_a_broken_card_is_one_failed_row_and_stray_text_is_said() -> None:
    data = (GOOGLE_V3 + "junk between\n" + BROKEN + OUTLOOK_V4 + "BEGIN:VCARD\nFN:x\n").encode()
    got = cards(data)
    assert got[0] is not None and got[0][0] == "zoe@example.com"
    assert got[1] == ["!text outside a vCard at line 12"]
    assert got[2] is not None and got[2][0].startswith("!the vCard at line 13 cannot be read")
    assert got[3] is not None and got[3][0] == "BOB@Example.com"
    assert got[4] == ["!the vCard at line 25 has no END:VCARD"]


def test_a_card_larger_than_the_limit_is_refused_alone() -> None:
    big = "BEGIN:VCARD\nVERSION:3.0\nFN:Big\nNOTE:" + "x" * 2_000_000 + "\nEND:VCARD\n"
    got = cards((big + OUTLOOK_V4).encode())
    assert got[0] == ["!the vCard at line 1 is larger than 1,048,576 characters"]
    assert got[1] is not None and got[1][0] == "BOB@Example.com"


def chunker_peak_rss(path: Path) -> int:
    """The chunker child's peak RSS reading `path`, sampled while it runs."""
    spec = chunker.ChunkSpec("utf-8", vcard.VCARD, False, 1 << 20, [0], 200, str(path))
    proc = subprocess.Popen(spec.argv(), env=spec.env(), stdout=subprocess.DEVNULL)
    child, peak = psutil.Process(proc.pid), 0
    while proc.poll() is None:
        with contextlib.suppress(psutil.NoSuchProcess):
            peak = max(peak, child.memory_info().rss)
        time.sleep(0.01)
    assert proc.returncode == 0
    return peak


def test_the_chunker_child_stays_flat_however_many_cards(tmp_path: Path) -> None:
    """8x the cards, the same memory: cards are read and parsed one at a time."""
    peaks = []
    for n in (500, 4000):  # about 0.4 and 3.3 MB of cards
        path = tmp_path / f"{n}.vcf"
        path.write_text("".join(APPLE.replace("ann@", f"ann{i}@") for i in range(n)))
        peaks.append(chunker_peak_rss(path))
    assert peaks[1] < peaks[0] + 8 * 1024 * 1024, peaks


async def test_a_vcf_imports_through_the_same_pipeline(
    client: Client, stack: Stack, tenant: Tenant, task_queue: str, owner_pool: asyncpg.Pool
) -> None:
    data = (APPLE + GOOGLE_V3 + OUTLOOK_V4 + BROKEN + NO_EMAIL + GOOGLE_V3).encode()
    settings = make_settings(stack, temporal_task_queue=task_queue)
    async with running_worker(client, settings, task_queue) as services:
        up, result = await import_bytes(
            client, services, settings, tenant.workspace_id, tenant.user_id, data
        )
    assert up.format.delimiter == vcard.VCARD and up.headers == vcard.HEADER
    assert up.mapping[:5] == ["email", "first_name", "last_name", "company", "phone"]
    assert up.total_rows == result["total_rows"] == 6
    assert (result["inserted"], result["failed"], result["duplicates"]) == (3, 2, 1)
    stored = await contacts(owner_pool, tenant.workspace_id)
    assert set(stored) == {"ann@example.com", "zoe@example.com", "bob@example.com"}
    ann = stored["ann@example.com"]
    assert (ann["first_name"], ann["last_name"], ann["company"], ann["phone"]) == (
        "Ann", "Lee", "Acme", "+1 555 0100",
    )  # fmt: skip
    custom = ann["custom_fields"]
    custom = custom if isinstance(custom, dict) else json.loads(custom)
    assert (custom["Email 2"], custom["Email 2 Label"]) == ("ann@work.example.com", "work")
    assert "Email" not in custom  # one address in the email column: no list to keep
    assert custom["Note"] == "met at the fair, 2023\nfollow up"
    assert stored["zoe@example.com"]["first_name"] == "Zoë"


async def test_exporters_cards_import_with_numbered_fields_and_no_markup(
    client: Client, stack: Stack, tenant: Tenant, task_queue: str, owner_pool: asyncpg.Pool
) -> None:
    """Apple's, Google's and Outlook's own files, and a card whose preferred address is not
    valid (its next one is the email): every address and number kept, no label markup."""
    bad_pref = (
        "BEGIN:VCARD\nVERSION:3.0\nFN:Typo\nEMAIL;type=pref:typo@@example.com\n"
        "item1.EMAIL:typo@example.com\nitem1.X-ABLABEL:_$!<Other>!$_\nEND:VCARD\n"
    )
    data = b"".join((VCARDS / f"{n}.vcf").read_bytes() for n in ("apple", "google", "outlook"))
    settings = make_settings(stack, temporal_task_queue=task_queue)
    async with running_worker(client, settings, task_queue) as services:
        _, result = await import_bytes(
            client, services, settings, tenant.workspace_id, tenant.user_id,
            data + bad_pref.encode(),
        )  # fmt: skip
    assert (result["inserted"], result["failed"]) == (6, 0)
    stored = await contacts(owner_pool, tenant.workspace_id)

    def custom(email: str) -> dict[str, str]:
        fields = stored[email]["custom_fields"]
        return fields if isinstance(fields, dict) else json.loads(fields)

    assert set(stored) == {
        "johnny@example.com", "ngozi@example.net", "maria@example.com", "kenji@example.jp",
        "bob.ng@contoso.example", "typo@example.com",
    }  # fmt: skip
    johnny = custom("johnny@example.com")
    assert (johnny["Email 3"], johnny["Email 3 Label"]) == ("johnny.other@example.org", "Other")
    assert stored["bob.ng@contoso.example"]["phone"] == "+1 (425) 555-0100"
    assert custom("bob.ng@contoso.example")["Phone 4 Label"] == "work, fax"
    # The next address is the email (and stays in its own field too); the preferred one,
    # not valid, is kept verbatim under the email column's name.
    typo = custom("typo@example.com")
    assert (typo["Email 2"], typo["Email"]) == ("typo@example.com", "typo@@example.com")
    everything = json.dumps([custom(e) for e in stored], ensure_ascii=False)
    assert "_$!<" not in everything and "X-ABLABEL" not in everything and ":::" not in everything


def test_an_upload_mapped_by_the_earlier_release_still_fits_its_rows() -> None:
    """A vCard upload made before the numbered columns (its stored header the first 16
    names) and imported after: the new columns come in as custom fields, no row fails."""
    earlier = vcard.HEADER[:16]
    mapper = Mapper(suggest_mapping(earlier), earlier)
    [ann] = cards(APPLE.encode())
    assert ann is not None
    rows, values, failures = mapper.map([(2, ann, None)])
    assert (rows, failures) == ([2], [])
    fields = dict(zip(mapper.custom_keys, values[0][6:], strict=True))
    assert values[0][0] == "ann@example.com"
    assert (fields["Email 2"], fields["Phone 2 Label"]) == ("ann@work.example.com", "work")
