"""Column mapping: CSV header (by column index) -> contact field or custom field.

A mapping is a list aligned with the header: "email", "first_name", "last_name",
"company", "phone", "custom:<name>", or "" to skip the column. Mapping by index means
duplicate header names never collapse into one.
"""

from __future__ import annotations

import difflib
import re
import unicodedata

STANDARD_FIELDS = ["email", "first_name", "last_name", "company", "phone"]

# Header names as the exports people have write them (compared folded: see _norm).
# Google Contacts (current: "E-mail 1 - Value", "Organization Name"; legacy: "Given Name",
# "Organization 1 - Name"), Outlook in English, German, French, Spanish, Italian, Dutch
# and Portuguese, LinkedIn, HubSpot, Salesforce, Mailchimp, Zoho, Pipedrive, Thunderbird,
# Roundcube. Where a word means different fields in two languages ("Nome" is a first
# name in Italian and Portuguese, "Nom" a last name in French) each keeps its own.
_SYNONYMS: dict[str, list[str]] = {
    "email": [
        "email", "e-mail", "email address", "e-mail address", "email_address", "mail",
        "emailaddress", "primary email", "work email", "e-mail 1 - value", "email 1 - value",
        "person - email", "person - email - work", "person - email - home", "email home",
        "email work", "e-mail-adresse", "e-mail adresse", "adresse de messagerie",
        "adresse e-mail", "adresse email", "courriel", "dirección de correo electrónico",
        "correo electrónico", "correo", "indirizzo posta elettronica",
        "indirizzo e-mail", "posta elettronica", "e-mailadres", "e-mail-adres",
        "endereço de email", "endereço de e-mail", "endereço de correio eletrónico",
        "endereço de correio eletrônico", "personal email", "email 1", "e-mail 1",
        "secondary email", "e-mail 2 address", "e-mail 2 - value", "e-mail 3 address",
        "e-mail 3 - value", "email other", "e-mail 2: adresse", "e-mail 3: adresse",
        "adresse de messagerie 2", "adresse de messagerie 3", "email 2", "e-mail 2",
    ],
    "first_name": [
        "first name", "first_name", "firstname", "given name", "forename", "first",
        "person - first name", "vorname", "prenom", "nombre", "nome", "voornaam",
        "primeiro nome",
    ],
    "last_name": [
        "last name", "last_name", "lastname", "surname", "family name", "last",
        "person - last name", "nachname", "nom", "nom de famille", "apellidos", "apellido",
        "cognome", "achternaam", "sobrenome", "apelido",
    ],
    "company": [
        "company", "company name", "organization", "organisation", "employer", "account",
        "business", "organization name", "organization 1 - name", "account name",
        "person - organization", "organization - name", "firma", "unternehmen", "societe",
        "entreprise", "organisation name", "compania", "empresa", "organizacion", "societa",
        "azienda", "bedrijf", "organizacao",
    ],
    "phone": [
        "phone", "phone number", "telephone", "tel", "mobile", "cell", "phone_number",
        "mobile phone", "mobile number", "phone 1 - value", "phone mobile",
        "person - phone", "person - phone - work", "person - phone - mobile",
        "primary phone", "business phone", "work phone", "home phone", "phone home",
        "phone work", "phone other", "mobiltelefon",
        "telefon geschaftlich", "tel. mobile", "telephone mobile", "telephone bureau",
        "telefono movil", "telefono del trabajo", "telefono", "cellulare",
        "telefono ufficio", "mobiele telefoon", "telefoon op werk", "telefoon", "telemovel",
        "telefone celular", "telefone comercial", "telefone",
    ],
}  # fmt: skip


def _norm(header: str) -> str:
    """Case, accents (NFKD, marks dropped: "Prénom" is "prenom") and punctuation folded."""
    folded = unicodedata.normalize("NFKD", header.casefold())
    folded = "".join(c for c in folded if not unicodedata.combining(c))
    return re.sub(r"[\W_]", "", folded)


_LOOKUP = {_norm(s): f for f, syns in _SYNONYMS.items() for s in syns}
_EMAIL_NAMES = [_norm(s) for s in _SYNONYMS["email"]]


def is_email_header(header: str) -> bool:
    return _LOOKUP.get(_norm(header)) == "email"


def email_columns(mapping: list[str]) -> list[int]:
    """Where a row's email is looked for, in order: the column mapped to email, then every
    column kept as a custom field whose header names an email ("E-mail 2 - Value",
    "Email Work"). The first valid address wins; the others stay in their custom fields."""
    if "email" not in mapping:
        return []
    first = mapping.index("email")
    rest = [
        i for i, t in enumerate(mapping)
        if i != first and t.startswith("custom:") and is_email_header(t[7:])
    ]  # fmt: skip
    return [first, *rest]


def closest_email_headers(headers: list[str], preview: list[list[str]]) -> list[str]:
    """Headers that might hold the email, for a file where none maps to it: columns whose
    preview values have an @, then names close to an email header's."""
    out = [
        h for i, h in enumerate(headers)
        if any(i < len(r) and "@" in r[i] for r in preview)
    ]  # fmt: skip
    for h in headers:
        if h not in out and difflib.get_close_matches(_norm(h), _EMAIL_NAMES, n=1, cutoff=0.6):
            out.append(h)
    return out[:5]


def mapping_notes(headers: list[str], mapping: list[str], preview: list[list[str]]) -> list[str]:
    """What the preview says about the email column(s), before anyone confirms."""
    columns = email_columns(mapping)
    if not columns:
        closest = closest_email_headers(headers, preview)
        return [
            f"no column maps to email (headers: {', '.join(headers[:50])}"
            f"{', ...' if len(headers) > 50 else ''}); "
            + (f"closest: {', '.join(closest)}; " if closest else "")
            + "the import stays pending until a column is mapped to email"
        ]
    if len(columns) > 1:
        names = ", ".join(repr(headers[i]) for i in columns)
        return [f"email: the first valid address of {names}, per row; the other columns "
                "stay as custom fields"]  # fmt: skip
    return []


class MappingError(ValueError):
    """A mapping that cannot be used. The message names the column and the field in no
    interface's words: the CLI adds its `--map` syntax, the HTTP API has its route."""


def suggest_mapping(headers: list[str]) -> list[str]:
    """Known names become standard fields (the first column wins); the rest custom fields."""
    mapping: list[str] = []
    taken: set[str] = set()
    for h in headers:
        f = _LOOKUP.get(_norm(h))
        if f and f not in taken:
            taken.add(f)
            mapping.append(f)
        else:
            mapping.append(f"custom:{h}")
    return mapping


def apply_overrides(headers: list[str], mapping: list[str], overrides: list[str]) -> list[str]:
    """`--map "Header=field"` (field: a standard field, `custom:<name>` or `skip`)."""
    out = list(mapping)
    for item in overrides:
        header, sep, target = item.partition("=")
        if not sep:
            raise MappingError(f"--map {item!r}: expected HEADER=FIELD")
        if header not in headers:
            raise MappingError(f"no column named {header!r} (columns: {headers})")
        target = target.strip()
        if target == "skip":
            target = ""
        elif target not in STANDARD_FIELDS and not target.startswith("custom:"):
            raise MappingError(
                f"column {header!r}: unknown field {target!r}; use one of "
                f"{', '.join(STANDARD_FIELDS)}, custom:<name> or skip"
            )
        if target in STANDARD_FIELDS:
            out = ["" if m == target else m for m in out]
        out[headers.index(header)] = target
    return out


def validate_mapping(mapping: list[str]) -> None:
    if "email" not in mapping:
        raise MappingError("no column is mapped to email: map the column of addresses to email")
