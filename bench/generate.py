"""Deterministic contact CSVs for the benchmark.

    python bench/generate.py --rows 1000000 --seed 42 --out var/bench/contacts-1m.csv

Columns: email, first_name, last_name, company, phone and three custom columns (plan,
city, score). About 2 % of rows repeat an earlier row's email (a third verbatim, a third
in other letter case, a third padded with spaces) and about 1 % carry an invalid email.

Rows are built in fixed blocks, each from its own generator seeded with (seed, block), so
a file is a prefix of any larger file with the same seed and the output never depends on
anything but (rows, seed). Names and the row's kind (plain, duplicate, invalid) come from
the row index, which lets a duplicate rebuild the email of any earlier row without
keeping a table of them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

HEADER = "email,first_name,last_name,company,phone,plan,city,score\n"
BLOCK = 65536
DUPLICATE_RATE = 0.02
INVALID_RATE = 0.01

FIRST = [
    "ada", "alan", "anna", "ben", "carl", "cleo", "dan", "dora", "eli", "emma", "finn", "gina",
    "hana", "ivan", "jack", "jade", "kai", "kim", "lea", "leo", "liam", "lily", "max", "mia",
    "nina", "noah", "olga", "omar", "paul", "pia", "quin", "rosa", "ruth", "sam", "sara", "tom",
    "tina", "uma", "vera", "will", "xena", "yan", "yara", "zoe", "zack", "amir", "bea", "chen",
    "dara", "enzo", "faye"
]  # fmt: skip
LAST = [
    "abe", "baker", "chan", "diaz", "evans", "fox", "garcia", "hill", "ito", "jones", "khan",
    "lee", "lopez", "moss", "ng", "novak", "okafor", "park", "quinn", "rossi", "silva", "smith",
    "tan", "ueda", "vega", "wang", "xu", "young", "zhou", "adams", "berg", "cruz", "dahl",
    "eriks", "ford", "gray", "hart"
]  # fmt: skip
COMPANY = [
    "Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark Ind", "Wayne Ent", "Tyrell",
    "Cyberdyne", "Soylent", "Vandelay", '"Dunder, Mifflin"', "Pied Piper", "Wonka",
    '"Smith, Jones & Co"', "Aperture", "Massive Dyn", "Gringotts", "Oscorp", "",
]  # fmt: skip
DOMAIN = ["example.com", "mail.test", "corp.example", "inbox.test", "acme.test"]
PLAN = ["free", "pro", "team", "ent"]
CITY = [
    "Paris", "Berlin", "Lagos", "Lima", "Oslo", "Pune", "Osaka", "Quito", "Perth", "Austin",
    '"Washington, DC"', "Seoul", "Cairo", "Kyiv", "Porto", "Dakar",
]  # fmt: skip
INVALID = ["{}.{}", "{}.{}@", "@{}.{}", "{} {}@x.test", "{}.{}@@x.test", "{}@{}"]


@dataclass(frozen=True)
class Generated:
    rows: int
    seed: int
    bytes: int
    duplicate_rows: int
    invalid_rows: int
    seconds: float


def _mix(idx: np.ndarray) -> np.ndarray:
    """A cheap integer hash, so the names of row j are a function of j alone."""
    x = idx.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    return x ^ (x >> np.uint64(29))


def _base_emails(idx: np.ndarray) -> list[str]:
    m = _mix(idx)
    f = (m % np.uint64(len(FIRST))).tolist()
    la = ((m >> np.uint64(8)) % np.uint64(len(LAST))).tolist()
    d = ((m >> np.uint64(16)) % np.uint64(len(DOMAIN))).tolist()
    return [
        f"{FIRST[a]}.{LAST[b]}{j}@{DOMAIN[c]}"
        for a, b, c, j in zip(f, la, d, idx.tolist(), strict=True)
    ]


def _kind(seed: int, idx: np.ndarray) -> np.ndarray:
    """Uniform [0, 1) per row from (seed, index) alone (splitmix64), so a duplicate can
    tell whether the row it copies is itself plain without generating that row."""
    with np.errstate(over="ignore"):
        z = idx.astype(np.uint64) + np.uint64(seed % 2**32) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    u = (z >> np.uint64(11)).astype(np.float64) / float(2**53)
    return np.where(idx == 0, 1.0, u)  # row 0 is always plain


def _block(seed: int, block: int) -> tuple[list[str], int, int]:
    """The lines of one block, with its duplicate and invalid row counts."""
    rng = np.random.default_rng([seed, block])
    start = block * BLOCK
    idx = np.arange(start, start + BLOCK, dtype=np.int64)
    kind = _kind(seed, idx)
    is_dup = kind < DUPLICATE_RATE
    is_bad = (kind >= DUPLICATE_RATE) & (kind < DUPLICATE_RATE + INVALID_RATE)
    # A duplicate copies a uniformly chosen earlier row (spread over the whole file); when
    # that row is itself a duplicate or invalid, the nearest plain row before it instead,
    # so every duplicate repeats an email that really is in the file.
    src = np.where(is_dup, (rng.random(BLOCK) * idx).astype(np.int64), idx)
    while True:
        k = _kind(seed, src)
        moved = is_dup & (k < DUPLICATE_RATE + INVALID_RATE)
        if not moved.any():
            break
        src = np.where(moved, src - 1, src)
    variant = rng.integers(0, 3, BLOCK).tolist()
    bad_kind = rng.integers(0, len(INVALID), BLOCK).tolist()
    company = rng.integers(0, len(COMPANY), BLOCK).tolist()
    phone = rng.integers(2_000_000_000, 9_999_999_999, BLOCK).tolist()
    no_phone = (rng.random(BLOCK) < 0.1).tolist()
    plan = rng.integers(0, len(PLAN), BLOCK).tolist()
    city = rng.integers(0, len(CITY), BLOCK).tolist()
    score = rng.integers(0, 100, BLOCK).tolist()

    emails = _base_emails(src)
    m = _mix(src)
    first = (m % np.uint64(len(FIRST))).tolist()
    last = ((m >> np.uint64(8)) % np.uint64(len(LAST))).tolist()
    for i in np.flatnonzero(is_dup).tolist():
        v = variant[i]
        if v == 1:
            emails[i] = emails[i].upper() if i % 2 else emails[i].title()
        elif v == 2:
            emails[i] = f"  {emails[i]} "
    for i in np.flatnonzero(is_bad).tolist():
        emails[i] = INVALID[bad_kind[i]].format(FIRST[first[i]], start + i)

    lines = [
        f"{emails[i]},{FIRST[first[i]].title()},{LAST[last[i]].title()},{COMPANY[company[i]]},"
        f"{'' if no_phone[i] else '+1' + str(phone[i])},{PLAN[plan[i]]},{CITY[city[i]]},"
        f"{score[i]}\n"
        for i in range(BLOCK)
    ]
    return lines, int(is_dup.sum()), int(is_bad.sum())


def generate(rows: int, seed: int, out: Path) -> Generated:
    if rows < 1:
        raise ValueError(f"--rows must be at least 1 (got {rows})")
    t0 = time.perf_counter()
    out.parent.mkdir(parents=True, exist_ok=True)
    dups = bad = 0
    tmp = out.with_name(out.name + ".part")
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        f.write(HEADER)
        for block in range((rows + BLOCK - 1) // BLOCK):
            lines, d, b = _block(seed, block)
            keep = min(BLOCK, rows - block * BLOCK)
            if keep < BLOCK:
                lines = lines[:keep]
                # Recount on the kept prefix so the reported figures match the file.
                d, b = _count(seed, block, keep)
            f.writelines(lines)
            dups += d
            bad += b
    tmp.replace(out)
    return Generated(rows, seed, out.stat().st_size, dups, bad, time.perf_counter() - t0)


def _count(seed: int, block: int, keep: int) -> tuple[int, int]:
    kind = _kind(seed, np.arange(block * BLOCK, block * BLOCK + keep, dtype=np.int64))
    d = kind < DUPLICATE_RATE
    b = (kind >= DUPLICATE_RATE) & (kind < DUPLICATE_RATE + INVALID_RATE)
    return int(d.sum()), int(b.sum())


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rows", type=int, required=True, help="data rows (header excluded)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    try:
        g = generate(args.rows, args.seed, args.out)
    except ValueError as e:
        sys.exit(str(e))
    print(json.dumps({"out": str(args.out), **asdict(g)}))


if __name__ == "__main__":
    main()
