"""The benchmark's CSV generator: same (rows, seed), same bytes; the mix it promises."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from bench.generate import generate


def test_same_seed_same_file_and_prefix_property(tmp_path: Path) -> None:
    a = generate(3000, 7, tmp_path / "a.csv")
    b = generate(3000, 7, tmp_path / "b.csv")
    small = generate(1000, 7, tmp_path / "small.csv")
    other = generate(3000, 8, tmp_path / "other.csv")
    data = (tmp_path / "a.csv").read_bytes()
    assert data == (tmp_path / "b.csv").read_bytes()
    assert data.startswith((tmp_path / "small.csv").read_bytes())
    assert data != (tmp_path / "other.csv").read_bytes()
    assert (a.bytes, small.rows, other.rows) == (len(data), 1000, 3000)
    assert b.duplicate_rows == a.duplicate_rows


def test_rows_columns_duplicates_and_invalid_emails(tmp_path: Path) -> None:
    g = generate(20_000, 1, tmp_path / "c.csv")
    with open(tmp_path / "c.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f, strict=True))
    assert rows[0] == ["email", "first_name", "last_name", "company", "phone", "plan", "city",
                       "score"]  # fmt: skip
    body = rows[1:]
    assert len(body) == 20_000 and {len(r) for r in body} == {8}
    emails = [r[0].strip().lower() for r in body]
    invalid = sum(1 for e in emails if e.count("@") != 1 or " " in e or e.endswith("@")
                  or e.startswith("@") or "." not in e.split("@")[-1])  # fmt: skip
    repeated = len(emails) - len(set(emails))
    assert invalid == g.invalid_rows and 100 < invalid < 300
    assert 300 < g.duplicate_rows < 500 and repeated == g.duplicate_rows
    assert any(r[0] != r[0].strip() for r in body) and any(r[0] != r[0].lower() for r in body)


def test_refuses_zero_rows(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        generate(0, 1, tmp_path / "x.csv")
