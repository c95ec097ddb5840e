"""Deterministic contact CSVs for the benchmark.

    python bench/generate.py --rows 1000000 --seed 42 --out var/bench/contacts-1m.csv

Columns: email, first_name, last_name, company, phone and three custom columns (plan,
city, score). About 2 % of rows repeat an earlier row's email (a third verbatim, a third
in other letter case, a third padded with spaces) and about 1 % carry an invalid email;
every other email is valid (at example.com and its subdomains), so an import fails just
the invalid rows.

Rows are built in fixed blocks, each from its own generator seeded with (seed, block), so
a file is a prefix of any larger file with the same seed and the output never depends on
anything but (rows, seed). Names and the row's kind (plain, duplicate, invalid) come from
the row index, which lets a duplicate rebuild the email of any earlier row without
keeping a table of them.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

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
# Public-looking and valid (email-validator accepts them as they are, no
# EMAIL_TEST_DOMAINS), yet reserved for examples (RFC 2606): no mail can reach a person.
# Special-use names such as `.test` would fail every row that has one.
DOMAIN = ["example.com", "mail.example.org", "corp.example.net", "inbox.example.com",
          "acme.example.org"]  # fmt: skip
PLAN = ["free", "pro", "team", "ent"]
CITY = [
    "Paris", "Berlin", "Lagos", "Lima", "Oslo", "Pune", "Osaka", "Quito", "Perth", "Austin",
    '"Washington, DC"', "Seoul", "Cairo", "Kyiv", "Porto", "Dakar",
]  # fmt: skip
INVALID = ["{}.{}", "{}.{}@", "@{}.{}", "{} {}@example.com", "{}.{}@@example.com", "{}@{}"]


@dataclass(frozen=True)
class Generated:
    rows: int
    seed: int
    bytes: int
    duplicate_rows: int
    invalid_rows: int
    seconds: float


M64 = (1 << 64) - 1


def _mix(j: int) -> int:
    """A cheap integer hash, so the names of row j are a function of j alone."""
    x = (j * 0x9E3779B97F4A7C15) & M64
    return x ^ (x >> 29)


def _base_email(j: int) -> tuple[str, int, int]:
    """Row j's own email, with its first and last name indexes."""
    m = _mix(j)
    f, la, d = m % len(FIRST), (m >> 8) % len(LAST), (m >> 16) % len(DOMAIN)
    return f"{FIRST[f]}.{LAST[la]}{j}@{DOMAIN[d]}", f, la


def _kind(seed: int, j: int) -> float:
    """Uniform [0, 1) per row from (seed, index) alone (splitmix64), so a duplicate can
    tell whether the row it copies is itself plain without generating that row."""
    if j == 0:
        return 1.0  # row 0 is always plain
    z = (j + (seed % 2**32) * 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    z ^= z >> 31
    return (z >> 11) / float(2**53)


def _block(seed: int, block: int, keep: int = BLOCK) -> tuple[list[str], int, int]:
    """The first `keep` lines of one block, with their duplicate and invalid row counts.

    Only the standard library: the generator runs in the project's own environment."""
    # A string seed is hashed (SHA-512) by `random`: the same stream on every platform.
    rng = random.Random(f"{seed}:{block}")
    start = block * BLOCK
    lines: list[str] = []
    dups = bad = 0
    for i in range(keep):
        j = start + i
        kind = _kind(seed, j)
        # Drawn for every row, so a row's values never depend on the kinds before it.
        pick, variant, bad_kind = rng.random(), rng.randrange(3), rng.randrange(len(INVALID))
        company, plan, city = (rng.randrange(len(COMPANY)), rng.randrange(len(PLAN)),
                               rng.randrange(len(CITY)))  # fmt: skip
        phone = rng.randrange(2_000_000_000, 9_999_999_999)
        no_phone, score = rng.random() < 0.1, rng.randrange(100)
        src = j
        if kind < DUPLICATE_RATE:
            dups += 1
            # A uniformly chosen earlier row (spread over the whole file); when that row is
            # itself a duplicate or invalid, the nearest plain row before it instead, so
            # every duplicate repeats an email that really is in the file.
            src = int(pick * j)
            while _kind(seed, src) < DUPLICATE_RATE + INVALID_RATE:
                src -= 1
        email, first, last = _base_email(src)
        if kind < DUPLICATE_RATE:
            if variant == 1:
                email = email.upper() if i % 2 else email.title()
            elif variant == 2:
                email = f"  {email} "
        elif kind < DUPLICATE_RATE + INVALID_RATE:
            bad += 1
            email = INVALID[bad_kind].format(FIRST[first], j)
        lines.append(
            f"{email},{FIRST[first].title()},{LAST[last].title()},{COMPANY[company]},"
            f"{'' if no_phone else '+1' + str(phone)},{PLAN[plan]},{CITY[city]},{score}\n"
        )
    return lines, dups, bad


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
            lines, d, b = _block(seed, block, min(BLOCK, rows - block * BLOCK))
            f.writelines(lines)
            dups += d
            bad += b
    tmp.replace(out)
    return Generated(rows, seed, out.stat().st_size, dups, bad, time.perf_counter() - t0)


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
