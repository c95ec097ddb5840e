"""Column mapping: CSV header (by column index) -> contact field or custom field.

A mapping is a list aligned with the header: "email", "first_name", "last_name",
"company", "phone", "tags" (tag names, separated as the export writes them, added to the
contact), "custom:<name>", or "" to skip the column. Mapping by index means
duplicate header names never collapse into one.
"""

from __future__ import annotations

import difflib
import re
import unicodedata

from folksjobs.exports import layout

STANDARD_FIELDS = ["email", "first_name", "last_name", "company", "phone"]
# Tag names (layout.split_tags): each is created in the workspace when it has none of that
# name, and added to the row's contact; an import never takes a tag off. Suggested for our
# own export's tags column only: another file's "Tags" stays a custom field unless mapped.
TAGS = "tags"
# What a column may map to, besides custom:<name> and skip.
FIELDS = [*STANDARD_FIELDS, TAGS]

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

# Further languages, each as its exporters write it. Sources, read for the names only:
# - Thunderbird's CSV export writes its header from importMsgs.properties, keys 2100
#   (first name), 2101 (last), 2104/2105 (primary and secondary email), 2106/2107/2110
#   (work, home, mobile phone) and 2125 (organisation), in each locale of
#   github.com/mozilla-l10n/firefox-l10n (<locale>/mail/chrome/messenger/).
# - Roundcube's CSV import maps the localised headers of Outlook and Thunderbird exports
#   in program/localization/<locale>/csv2vcard.inc of github.com/roundcube/roundcubemail
#   (ru_RU, pl_PL, it_IT, pt_BR, zh_TW).
# - Outlook's and Google's own localisation files are not public: their localised
#   headers here are the ones Roundcube lists, a few of Outlook's that no public file
#   lists (Japanese "電子メール アドレス", "勤務先電話"), and the plain words a person types
#   as a spreadsheet header ("Компания", "Телефон", "電話番号").
# Within a language a word keeps one meaning; across languages the same word ("Firma",
# "Telefon") means the same field everywhere, which tests/test_mapping_exports.py checks.
_LOCALISED: dict[str, dict[str, list[str]]] = {
    "ru": {
        "first_name": ["имя"],
        "last_name": ["фамилия"],
        "email": ["адрес электронной почты", "альтернативный адрес электронной почты",
                  "электронная почта", "эл. почта", "адрес эл. почты", "почта",
                  "e-mail 2", "адрес эл. почты 2"],
        "company": ["организация", "компания", "название компании"],
        "phone": ["телефон", "рабочий телефон", "домашний телефон", "мобильный телефон",
                  "номер сотового телефона", "номер телефона", "сотовый телефон"],
    },
    "uk": {
        "first_name": ["ім’я", "ім'я"],
        "last_name": ["прізвище"],
        "email": ["адреса електронної пошти", "альтернативна адреса електронної пошти",
                  "електронна пошта", "ел. пошта"],
        "company": ["організація", "компанія"],
        "phone": ["телефон (роб.)", "номер мобільного телефону", "мобільний телефон",
                  "номер телефону", "робочий телефон", "домашній телефон"],
    },
    "pl": {
        "first_name": ["imię"],
        "last_name": ["nazwisko"],
        "email": ["podstawowy e-mail", "dodatkowy e-mail", "adres e-mail", "adres email"],
        "company": ["firma/organizacja", "organizacja", "nazwa firmy"],
        "phone": ["telefonu służbowy", "telefon służbowy", "telefon domowy",
                  "telefon komórkowy", "numer telefonu komórkowego", "telefon główny",
                  "numer telefonu"],
    },
    "cs": {
        "first_name": ["křestní jméno", "jméno"],
        "last_name": ["příjmení"],
        "email": ["první e-mail", "druhý e-mail", "e-mailová adresa"],
        "company": ["společnost", "organizace"],
        "phone": ["telefon do zaměstnání", "telefon domů", "číslo na mobil",
                  "mobilní telefon", "telefonní číslo"],
    },
    "tr": {
        "first_name": ["isim", "adı"],
        "last_name": ["soyadı", "soyad"],
        "email": ["birinci e-posta", "ikinci e-posta", "e-posta", "e-posta adresi"],
        "company": ["kurum", "şirket", "şirket adı"],
        "phone": ["iş telefonu", "ev telefonu", "cep telefonu", "telefon numarası", "telefon"],
    },
    "it": {
        "email": ["indirizzo e-mail 2", "indirizzo e-mail 3", "email principale",
                  "email secondaria"],
        "company": ["organizzazione", "società di lavoro"],
        "phone": ["telefono di lavoro", "telefono di casa", "telefono mobile",
                  "numero cellulare", "telefono lavoro", "telefono principale"],
    },
    "pt": {
        "first_name": ["nome próprio"],
        "last_name": ["último nome"],
        "email": ["e-mail primário", "e-mail secundário", "endereço de e-mail 2",
                  "endereço de e-mail 3"],
        "company": ["nome da empresa"],
        "phone": ["fone comercial", "fone de casa", "celular", "fone de trabalho",
                  "telefone do emprego", "telefone de casa", "telemóvel"],
    },
    "nl": {
        "email": ["eerste e-mail", "tweede e-mail", "e-mail-adres"],
        "company": ["organisatie", "bedrijfsnaam"],
        "phone": ["telefoon werk", "telefoon thuis", "mobiel nummer", "telefoonnummer",
                  "mobiel"],
    },
    "ja": {
        "first_name": ["名"],
        "last_name": ["姓"],
        "email": ["メールアドレス", "別のメールアドレス", "電子メール アドレス",
                  "電子メール 2 アドレス", "eメール"],
        "company": ["組織", "会社", "会社名"],
        "phone": ["勤務先の電話番号", "自宅の電話番号", "携帯電話番号", "電話番号",
                  "携帯電話", "勤務先電話"],
    },
    "zh": {
        "first_name": ["名字", "名"],
        "last_name": ["姓氏", "姓"],
        "email": ["主要电子邮件", "备用电子邮件", "电子邮件", "电子邮件地址", "邮箱",
                  "電子郵件地址", "主要 email", "次要 email"],
        "company": ["公司", "公司名称", "組織"],
        "phone": ["工作电话", "家庭电话", "移动电话号码", "电话", "手机", "商務電話",
                  "住家電話", "行動電話", "手機號碼", "電話"],
    },
    "ko": {
        "first_name": ["이름"],
        "last_name": ["성"],
        "email": ["기본 메일", "추가 메일", "이메일", "이메일 주소", "전자 메일 주소"],
        "company": ["회사명", "회사"],
        "phone": ["직장 전화", "자택 전화", "휴대폰", "전화번호", "휴대전화"],
    },
}  # fmt: skip


def _norm(header: str) -> str:
    """Case, accents (NFKD, marks dropped: "Prénom" is "prenom") and punctuation folded.
    Turkish dotless i (U+0131) is i: "SOYADI" casefolds to "soyadi", and Turkish's own
    "Soyad\u0131" must match it."""
    folded = unicodedata.normalize("NFKD", header.casefold().replace("\u0131", "i"))
    folded = "".join(c for c in folded if not unicodedata.combining(c))
    return re.sub(r"[\W_]", "", folded)


def _all_synonyms() -> dict[str, list[str]]:
    merged = {f: list(names) for f, names in _SYNONYMS.items()}
    for fields in _LOCALISED.values():
        for f, names in fields.items():
            merged[f] += names
    return merged


SYNONYMS = _all_synonyms()
_LOOKUP = {_norm(s): f for f, syns in SYNONYMS.items() for s in syns}
_EMAIL_NAMES = [_norm(s) for s in SYNONYMS["email"]]


def is_email_header(header: str) -> bool:
    """An email's header, numbered or not ("Email", "Email 3": a vCard's further emails)."""
    name = _norm(header)
    return _LOOKUP.get(name) == "email" or _LOOKUP.get(name.rstrip("0123456789")) == "email"


def email_columns(mapping: list[str]) -> list[int]:
    """Where a row's email is looked for, in order: the column mapped to email, then every
    column kept as a custom field whose header names an email ("E-mail 2 - Value",
    "Email Work"). The first valid address wins; the others stay in their custom fields,
    and the email column's own cell, when it is not the one taken, in a custom field named
    after its header (contacts.map_cells)."""
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
    notes = [EXPORT_NOTE] if layout.is_export_header(headers) else []
    columns = email_columns(mapping)
    if not columns:
        closest = closest_email_headers(headers, preview)
        return [
            *notes,
            f"no column maps to email (headers: {', '.join(headers[:50])}"
            f"{', ...' if len(headers) > 50 else ''}); "
            + (f"closest: {', '.join(closest)}; " if closest else "")
            + "the import stays pending until a column is mapped to email",
        ]
    if len(columns) > 1:
        names = ", ".join(repr(headers[i]) for i in columns)
        return [*notes, f"email: the first valid address of {names}, per row; the other "
                        "columns stay as custom fields"]  # fmt: skip
    return notes


EXPORT_NOTE = (
    "a folksjobs export: its columns " + ", ".join(layout.EXPORT_ONLY) + " are skipped (an "
    "import sets no timestamps or avatars), its tags are added to the contacts (none is "
    "taken off), and the quote the export puts before formula-like cells is taken off"
)


class MappingError(ValueError):
    """A mapping that cannot be used. The message names the column and the field in no
    interface's words: the CLI adds its `--map` syntax, the HTTP API has its route."""


def suggest_mapping(headers: list[str]) -> list[str]:
    """Known names become standard fields (the first column wins); the rest custom fields.
    Our own export's columns that only an export writes (layout.EXPORT_ONLY) are skipped,
    and its tags column is the tags field."""
    mapping: list[str] = []
    taken: set[str] = set()
    export = layout.is_export_header(headers)
    skipped = set(layout.EXPORT_ONLY) if export else set()
    tags = export
    for h in headers:
        if h in skipped:
            skipped.discard(h)  # the export's own column; a custom key of the same name stays
            mapping.append("")
            continue
        if tags and h == layout.TAGS_COLUMN:
            tags = False  # the export's own; a custom key named "tags" after it stays one
            mapping.append(TAGS)
            continue
        f = _LOOKUP.get(_norm(h))
        if f and f not in taken:
            taken.add(f)
            mapping.append(f)
        else:
            mapping.append(f"custom:{h}")
    return mapping


def apply_overrides(headers: list[str], mapping: list[str], overrides: list[str]) -> list[str]:
    """`--map "Header=field"` (field: a standard field, tags, `custom:<name>` or `skip`)."""
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
        elif target not in FIELDS and not target.startswith("custom:"):
            raise MappingError(
                f"column {header!r}: unknown field {target!r}; use one of "
                f"{', '.join(FIELDS)}, custom:<name> or skip"
            )
        if target in FIELDS:
            out = ["" if m == target else m for m in out]
        out[headers.index(header)] = target
    return out


def validate_mapping(mapping: list[str]) -> None:
    if "email" not in mapping:
        raise MappingError("no column is mapped to email: map the column of addresses to email")
