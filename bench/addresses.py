"""The address check alone: median µs per address, folksjobs against email-validator.

    .venv/bin/python bench/addresses.py [--csv var/bench/contacts-1m.csv] [--rows 200000]

Addresses come from the bench file's email column when --csv is given (what the 1M import
checks), else from a deterministic mix of the same kinds (plain, other letter case,
padded, about 1 % invalid). A second line times the tricky set of tests/test_addresses.py
(Unicode, invisible characters, punycode, quoted local parts), nearly all of which take
email-validator's path. Each figure is the median of five rounds.
"""

from __future__ import annotations

import argparse
import csv
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from email_validator import EmailNotValidError, validate_email

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from folksjobs.imports.addresses import parse_email
from tests.test_addresses import tricky

ROUNDS = 5


def mix(rows: int, seed: int = 42) -> list[str]:
    rnd = random.Random(seed)
    domains = ["example.com", "mail.example.org", "corp.example.net", "example.co.uk"]
    out = []
    for i in range(rows):
        email = f"user.{i:07d}+{rnd.randrange(100)}@{rnd.choice(domains)}"
        r = rnd.random()
        if r < 0.01:
            email = email.replace("@", " at ")
        elif r < 0.02:
            email = f"  {email.upper()} "
        out.append(email)
    return out


def from_csv(path: Path, rows: int) -> list[str]:
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        next(reader)
        return [r[0] for _, r in zip(range(rows), reader, strict=False)]


def oracle(address: str) -> bool:
    try:
        validate_email(address.strip(" \t"), check_deliverability=False)
    except EmailNotValidError:
        return False
    return True


def median_us(check: Callable[[str], object], addresses: list[str]) -> float:
    times = []
    for _ in range(ROUNDS):
        t0 = time.perf_counter()
        for a in addresses:
            check(a)
        times.append((time.perf_counter() - t0) / len(addresses) * 1e6)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--csv", type=Path)
    ap.add_argument("--rows", type=int, default=200_000)
    args = ap.parse_args()
    plain = from_csv(args.csv, args.rows) if args.csv else mix(args.rows)
    hard = tricky(5000)
    print(f"{'addresses':<28}{'n':>9}{'folksjobs µs':>14}{'email-validator µs':>20}")
    for name, addresses in (("bench mix", plain), ("tricky (tests)", hard)):
        ours = median_us(parse_email, addresses)
        theirs = median_us(oracle, addresses)
        print(f"{name:<28}{len(addresses):>9,}{ours:>14.2f}{theirs:>20.2f}")


if __name__ == "__main__":
    main()
