"""Comparing what an import did with what the corpus manifest expects."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

# How error samples number rows, from the manifest's record numbers (1 = the first record
# after the header): the import counts the header as row 1 (csvstream.Record), so +1.
# Records, not lines: a quoted newline never shifts the numbers.
ROW_OFFSETS = (1,)
COUNTS = ("rows", "inserted", "updated", "failed", "duplicates")


@dataclass
class Outcome:
    status: Literal["imported", "refused"]
    # "upload": refused before any import started; "import": the import ran (and failed,
    # for a refusal).
    stage: Literal["upload", "import"]
    message: str = ""
    rows: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: int = 0
    duplicates: int = 0
    error_samples: list[tuple[int, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # Every stored contact of the workspace: email, first_name, ..., custom_fields.
    contacts: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> str:
        if self.status == "refused":
            return f"refused at {self.stage}: {self.message!r}"
        counts = ", ".join(f"{k}={getattr(self, k)}" for k in COUNTS)
        samples = "; ".join(f"row {r}: {why}" for r, why in self.error_samples[:5])
        return f"imported ({counts}) samples: [{samples}] warnings: {self.warnings}"


def _any_of(alternatives: str, text: str) -> bool:
    return any(a.lower() in text.lower() for a in alternatives.split("|"))


def _values(contact: dict[str, Any]) -> list[str]:
    out = [str(v) for k, v in contact.items() if k != "custom_fields" and v is not None]
    custom = contact.get("custom_fields") or {}
    if isinstance(custom, str):
        custom = json.loads(custom)
    out += [str(v) for v in custom.values()]
    return out


def mismatches(expect: dict[str, Any], got: Outcome) -> list[str]:
    """What differs between one expectation and the outcome; [] when it matches."""
    if got.status != expect["outcome"]:
        return [f"expected {expect['outcome']}, got {got.summary()}"]
    bad: list[str] = []
    if got.status == "refused":
        if expect.get("stage") == "upload" and got.stage != "upload":
            bad.append(f"expected a refusal at upload, before any import; got one at {got.stage}")
        for group in expect.get("refusal_contains", []):
            if not _any_of(group, got.message):
                bad.append(f"refusal {got.message!r} mentions none of {group!r}")
        stored = {c["email"] for c in got.contacts}
        if got.stage == "upload" and stored:
            bad.append(f"refused at upload yet {len(stored)} contacts were stored")
        return bad
    for key in COUNTS:
        if key in expect and getattr(got, key) != expect[key]:
            bad.append(f"{key}: expected {expect[key]}, got {getattr(got, key)}")
    total = got.inserted + got.updated + got.unchanged + got.failed + got.duplicates
    if total != got.rows:
        bad.append(f"inserted+updated+unchanged+failed+duplicates = {total} != rows {got.rows}")
    if "failed_records" in expect:
        rows = [r for r, _ in got.error_samples]
        wanted = expect["failed_records"][:10]
        if not any(sorted(rows) == [r + off for r in wanted] for off in ROW_OFFSETS):
            bad.append(f"failed rows: expected records {wanted}, samples name rows {rows}")
    if "reason_contains" in expect:
        for row, why in got.error_samples:
            if not _any_of(expect["reason_contains"], why):
                bad.append(
                    f"row {row} reason {why!r} mentions none of {expect['reason_contains']!r}"
                )
    if "warning_contains" in expect and not any(
        _any_of(expect["warning_contains"], w) for w in got.warnings
    ):
        bad.append(f"no warning mentions {expect['warning_contains']!r}: {got.warnings}")
    by_email = {c["email"]: c for c in got.contacts}
    if "emails" in expect and set(by_email) != set(expect["emails"]):
        bad.append(f"stored emails {sorted(by_email)} != expected {sorted(expect['emails'])}")
    for email in expect.get("must_store", []):
        if email not in by_email:
            bad.append(f"{email} was not stored")
    for email, fields in expect.get("contacts", {}).items():
        contact = by_email.get(email)
        if contact is None:
            bad.append(f"{email} was not stored")
            continue
        for name, value in fields.items():
            if contact.get(name) != value:
                bad.append(f"{email} {name}: expected {value!r}, stored {contact.get(name)!r}")
    for email, fields in expect.get("custom", {}).items():
        contact = by_email.get(email)
        if contact is None:
            bad.append(f"{email} was not stored")
            continue
        kept = contact.get("custom_fields") or {}
        kept = json.loads(kept) if isinstance(kept, str) else kept
        if kept != fields:
            bad.append(f"{email} custom fields: expected {fields!r}, stored {kept!r}")
    values = [v for c in got.contacts for v in _values(c)]
    for wanted in expect.get("values_present", []):
        if not any(wanted in v for v in values):
            bad.append(f"value {wanted!r} is stored nowhere")
    if expect.get("no_newlines") and any("\n" in v or "\r" in v for v in values):
        bad.append("a stored value holds a line break: records were swallowed into one field")
    return bad


def judge(entry: dict[str, Any], got: Outcome) -> tuple[bool, str]:
    """Whether the outcome matches the entry or one of its alternatives, and why not."""
    options = [{k: v for k, v in entry.items() if k != "or"}, *entry.get("or", [])]
    report = []
    for i, option in enumerate(options):
        bad = mismatches(option, got)
        if not bad:
            return True, ""
        report.append(f"  alternative {i + 1} ({option['outcome']}): " + "; ".join(bad))
    return False, f"got {got.summary()}\n" + "\n".join(report)
