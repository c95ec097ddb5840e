"""Demo data: a deterministic contact CSV (seeded) with a few duplicates and bad emails."""

from __future__ import annotations

import csv
import random
from pathlib import Path

FIRST = [
    "Ada",
    "Alan",
    "Grace",
    "Linus",
    "Barbara",
    "Ken",
    "Margaret",
    "Dennis",
    "Frances",
    "Edsger",
    "Hedy",
    "Tim",
    "Radia",
    "Guido",
    "Sophie",
    "Niklaus",
    "Karen",
    "Donald",
]
LAST = [
    "Lovelace",
    "Turing",
    "Hopper",
    "Torvalds",
    "Liskov",
    "Thompson",
    "Hamilton",
    "Ritchie",
    "Allen",
    "Dijkstra",
    "Lamarr",
    "Berners-Lee",
    "Perlman",
    "van Rossum",
]
COMPANIES = ["Acme", "Globex", "Initech", "Umbrella", "Hooli", "Pied Piper", "Vandelay, Inc."]
PLANS = ["free", "pro", "team", "enterprise"]
CITIES = ["Paris", "Lagos", "Lima", "Osaka", "Porto", "Austin", "Seoul"]


def write_demo_csv(path: Path, rows: int, seed: int = 7) -> Path:
    """`rows` data rows: ~2 % repeat an earlier email, ~1 % have an invalid one."""
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(
            ["Email", "First Name", "Last Name", "Company", "Phone", "Plan", "City", "Score"]
        )
        for i in range(rows):
            first, last = rng.choice(FIRST), rng.choice(LAST)
            roll = rng.random()
            if roll < 0.02 and i > 10:
                email = f"user{rng.randrange(i)}@example.com".upper()
            elif roll < 0.03:
                email = f"{first}.{last} at example.com"
            else:
                email = f"user{i}@example.com"
            w.writerow(
                [
                    email,
                    first,
                    last,
                    rng.choice(COMPANIES),
                    f"+1-555-{rng.randrange(10**7):07d}",
                    rng.choice(PLANS),
                    rng.choice(CITIES),
                    str(rng.randrange(100)),
                ]
            )
    return path
