"""The corpus itself: enough files, each written as its manifest says, outcomes coherent.

No server needed; `tests/test_corpus.py` runs the files through the import.
"""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.corpus.check import COUNTS, Outcome, judge
from tests.corpus.generate import CASES, DEFAULT_LIMIT, MANIFEST, MB, generate, main

KEYS = {
    "outcome", "stage", *COUNTS, "failed_records", "reason_contains", "refusal_contains",
    "warning_contains", "emails", "must_store", "contacts", "values_present", "no_newlines",
    "settings", "custom",
}  # fmt: skip
ISSUE_GROUPS = {
    "encoding", "line endings", "quoting", "shape", "emails", "hostile",
    # issue 15: a class per rule
    "verbatim", "records", "header", "legacy encodings", "email validator", "exports", "vcard",
}  # fmt: skip


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("corpus")
    generate(directory)
    return directory


def options(entry: dict[str, Any]) -> list[dict[str, Any]]:
    return [{k: v for k, v in entry.items() if k != "or"}, *entry.get("or", [])]


def test_at_least_40_files_covering_every_class(corpus: Path) -> None:
    names = [c.name for c in CASES]
    assert len(names) >= 40
    assert len(set(names)) == len(names)
    assert set(MANIFEST) == set(names)
    assert {c.group for c in CASES} == ISSUE_GROUPS
    written = {p.name for p in corpus.iterdir()} - {"manifest.json"}
    assert written == set(names)


def test_every_expectation_is_coherent() -> None:
    file_keys = {"or", "group", "encoding", "delimiter", "note"}
    for name, entry in MANIFEST.items():
        assert set(entry) <= KEYS | file_keys, name
        for option in options(entry):
            assert set(option) <= KEYS | file_keys, (name, set(option) - KEYS - file_keys)
            assert option["outcome"] in ("imported", "refused"), name
            if option["outcome"] == "refused":
                assert option["refusal_contains"], f"{name}: a refusal must say what it expects"
                continue
            if all(k in option for k in COUNTS):
                parts = sum(option[k] for k in COUNTS[1:])
                assert parts == option["rows"], f"{name}: counts do not add up to rows"
            if "failed_records" in option:
                assert len(option["failed_records"]) == option["failed"], name
                assert "reason_contains" in option, f"{name}: failed rows need a reason"
            if "emails" in option and "inserted" in option:
                assert len(option["emails"]) == option["inserted"], name


def test_files_parse_to_the_expected_record_counts(corpus: Path) -> None:
    """Where the file is plain CSV, a strict csv reader agrees with the expected rows."""
    checked = 0
    csv.field_size_limit(sys.maxsize)
    for c in CASES:
        first = options(MANIFEST[c.name])[0]
        if c.encoding is None or c.delimiter is None or "rows" not in first:
            continue
        data = (corpus / c.name).read_bytes().decode(c.encoding)
        records = list(csv.reader(io.StringIO(data, newline=""), delimiter=c.delimiter,
                                  strict=True))  # fmt: skip
        non_blank = [r for r in records if any(cell.strip() for cell in r)]
        assert data[:1] != "\ufeff", f"{c.name}: the BOM survived decoding"
        assert non_blank[0][0] in ("email",), c.name
        assert len(non_blank) - 1 == first["rows"], c.name
        checked += 1
    assert checked >= 25


def test_size_cases_are_the_sizes_they_claim(tmp_path: Path) -> None:
    generate(tmp_path, limit=5000)
    assert (tmp_path / "size_at_limit.csv").stat().st_size == 5000
    assert (tmp_path / "size_over_limit.csv").stat().st_size == 5001
    assert MANIFEST["size_at_limit.csv"]["settings"] == {"upload_max_bytes": DEFAULT_LIMIT}
    header = (tmp_path / "header_over_64kb.csv").read_bytes().split(b"\n", 1)[0]
    assert len(header) > 64 * 1024
    cell = max((tmp_path / "cell_5mb.csv").read_bytes().split(b","), key=len)
    assert len(cell) >= 5 * MB
    wide = (tmp_path / "columns_2000.csv").read_text().split("\n", 1)[0]
    assert len(wide.split(",")) == 2000
    assert b"\x00" in (tmp_path / "nul_mid_file.csv").read_bytes()[8192:]
    assert b"\x00" not in (tmp_path / "nul_mid_file.csv").read_bytes()[:8192]


def test_generator_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main([str(tmp_path), "--limit", "3000"])
    assert f"wrote {len(CASES)} files" in capsys.readouterr().out
    assert (tmp_path / "manifest.json").exists()
    assert (tmp_path / "size_at_limit.csv").stat().st_size == 3000


def test_judge_accepts_a_match_and_explains_a_miss() -> None:
    entry = MANIFEST["quoted_newlines.csv"]
    contacts = [
        {"email": "a@example.com", "first_name": "Ann",
         "custom_fields": {"notes": "line one\nline two\nline three"}},
        {"email": "c@example.com", "first_name": "Cy", "custom_fields": {"notes": "x, y"}},
    ]  # fmt: skip
    good = Outcome("imported", "import", rows=3, inserted=2, failed=1,
                   error_samples=[(3, "invalid email address")], contacts=contacts)  # fmt: skip
    assert judge(entry, good) == (True, "")
    by_line = Outcome("imported", "import", rows=3, inserted=2, failed=1,
                      error_samples=[(5, "invalid email address")], contacts=contacts)  # fmt: skip
    ok, why = judge(entry, by_line)
    assert not ok and "samples name rows [5]" in why
    refusal = Outcome("refused", "upload", message="This looks like an Excel file (xlsx)")
    ok, why = judge(MANIFEST["xlsx_named.csv"], refusal)
    assert not ok and "'csv'" in why
    refusal.message += ": export it as CSV"
    assert judge(MANIFEST["xlsx_named.csv"], refusal) == (True, "")
