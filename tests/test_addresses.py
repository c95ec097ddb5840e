"""Email verdicts are python-email-validator's, on addresses built to be hard.

email-validator (check_deliverability=False, its special-use domains) is the oracle: every
generated address gets the same verdict from folksjobs.imports.addresses, whose ASCII fast
path must never accept what the oracle refuses nor refuse what it accepts.
"""

from __future__ import annotations

import random
import unicodedata

from email_validator import EmailNotValidError, validate_email

from folksjobs.imports.addresses import parse_email

LOCALS = [
    "ann",
    "Ann.Lee",
    "a",
    "x" * 64,
    "x" * 65,
    "a.b.c",
    ".ann",
    "ann.",
    "a..b",
    "a+tag",
    "o'neil",
    "a!#$%&'*+/=?^_`{|}~-b",
    '"quoted"',
    '"a b"',
    "a b",
    "a\tb",
    "a,b",
    "a;b",
    "a(b)",
    "a<b>",
    "a[b]",
    "a\\b",
    "a:b",
    "josé",
    "jose\u0301",
    "用户",
    "пользователь",
    "δοκιμή",
    "नाम",
    "ann\u200b",
    "\ufeffann",
    "an\u202en",
    "an\u00adn",
    "ann\u0000",
    "ann\x7f",
    "a\u2028b",
    "a\u2029b",
    "a\ue000b",
    "a\U000f0000b",
    "a\u0378b",
    "ＡＮＮ",
    "ann\u0301",
    "\u0301ann",
    "ann🙂",
    "İstanbul",
    "ß",
    "ﬁle",
    "a\u00a0b",
    "a\u3000b",
    "postmaster",
    "ann@",
    "",
    " ann",
]
DOMAINS = [
    "example.com",
    "Example.COM",
    "sub.example.co.uk",
    "bücher.de",
    "xn--bcher-kva.de",
    "XN--BCHER-KVA.DE",
    "xn--0.com",
    "xn--.com",
    "xn--zz-zz.com",
    "ab--cd.com",
    "under_score.com",
    "a_b.example.com",
    "localhost",
    "host.localhost",
    "x.invalid",
    "x.test",
    "x.onion",
    "1.in-addr.arpa",
    "printer.local",
    "example",
    "example.c",
    "example.123",
    "example.com1",
    "123.com",
    "-example.com",
    "example-.com",
    "example..com",
    ".example.com",
    "example.com.",
    "a" * 63 + ".com",
    "a" * 64 + ".com",
    ".".join(["abcdefghi"] * 25) + ".com",
    "[192.0.2.1]",
    "[IPv6:2001:db8::1]",
    "пример.рф",
    "例え.テスト",
    "xn--e1afmkfd.xn--p1ai",
    "exa\u200bmple.com",
    "exam\u0301ple.com",
    "ｅｘａｍｐｌｅ.com",
    "ex\u202eample.com",
    "mañana.com",
    "example.co\u0308m",
    "σ.gr",
    "ς.gr",
    "example.com:25",
    "exa mple.com",
    "exa@mple.com",
]
NOISE = ["", " ", "\t", "\u200b", "\ufeff", "\u202e", "\u00a0", "\u2028", "\n", "\u0301", "."]


def oracle(address: str) -> bool:
    try:
        validate_email(address, check_deliverability=False)
    except EmailNotValidError:
        return False
    return True


def tricky(n: int, seed: int = 15) -> list[str]:
    rnd = random.Random(seed)
    out = [f"{loc}@{dom}" for loc in LOCALS for dom in DOMAINS[:12]]
    out += [f"ann@{dom}" for dom in DOMAINS] + ["plain", "a@b@c.com", "@example.com", "a@"]
    while len(out) < n:
        loc, dom = rnd.choice(LOCALS), rnd.choice(DOMAINS)
        if rnd.random() < 0.3:
            loc = unicodedata.normalize(rnd.choice(["NFD", "NFKC", "NFC"]), loc)
        if rnd.random() < 0.3:
            loc = loc.upper() if rnd.random() < 0.5 else loc.swapcase()
        address = f"{loc}@{dom}"
        if rnd.random() < 0.3:
            i = rnd.randrange(len(address) + 1)
            address = address[:i] + rnd.choice(NOISE) + address[i:]
        if rnd.random() < 0.1:
            address = "x" * rnd.randrange(200, 260) + address  # past the length limits
        out.append(address)
    return out


def test_every_verdict_equals_email_validators() -> None:
    addresses = tricky(3000)
    assert len(set(addresses)) >= 2000
    differ = []
    accepted = 0
    for a in addresses:
        _, problem = parse_email(a)
        ours = problem is None
        accepted += ours
        if ours != oracle(a.strip(" \t")):
            differ.append((a, problem))
        if problem:
            assert problem.startswith(("invalid email address", "missing email")), problem
    assert not differ, differ[:20]
    assert 300 < accepted < len(addresses) - 300  # both verdicts are well exercised


def test_the_named_classes() -> None:
    refused = [
        "ann\u200b@example.com",
        "\ufeffann@example.com",
        "an\u202en@example.com",
        "ann@x.localhost",
        "ann@x.invalid",
        "ann@x.test",
        "ann@x.onion",
        "ann@1.in-addr.arpa",
        "ann@printer.local",
        "ann@xn--0.com",
        "ann@under_score.com",
        '"ann"@example.com',
    ]
    for a in refused:
        assert parse_email(a)[1], a
        assert not oracle(a), a


def test_one_person_one_spelling() -> None:
    spellings = ["José@Example.com", "jose\u0301@example.com", " JOSÉ@EXAMPLE.COM\t"]
    assert {parse_email(s) for s in spellings} == {("josé@example.com", None)}
    assert parse_email("User@XN--BCHER-KVA.DE") == parse_email("user@bücher.de")
    assert parse_email("user@bücher.de") == ("user@bücher.de", None)
    assert parse_email("   ") == ("", "missing email")


def test_the_test_domain_setting_matches_email_validators_test_environment() -> None:
    assert parse_email("ann@mail.test", allow_test=True) == ("ann@mail.test", None)
    assert parse_email("ann@mail.test")[1]
    assert parse_email("ann@x.localhost", allow_test=True)[1]
    for a in tricky(2500, seed=19):
        try:
            validate_email(a.strip(" \t"), check_deliverability=False, test_environment=True)
            theirs = True
        except EmailNotValidError:
            theirs = False
        assert (parse_email(a, allow_test=True)[1] is None) == theirs, a
