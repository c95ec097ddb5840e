"""Auto-mapping of the exports people have, each from its real header row."""

from __future__ import annotations

import csv
import io

import pytest

from folksjobs.imports.mapping import email_columns, mapping_notes, suggest_mapping

# name: (header row as the app writes it, {field: the header it must map from},
#        further email columns, in order)
EXPORTS: dict[str, tuple[str, dict[str, str], list[str]]] = {
    "google": (
        "First Name,Middle Name,Last Name,Phonetic First Name,Phonetic Middle Name,"
        "Phonetic Last Name,Name Prefix,Name Suffix,Nickname,File As,Organization Name,"
        "Organization Title,Organization Department,Birthday,Notes,Photo,Labels,"
        "E-mail 1 - Label,E-mail 1 - Value,E-mail 2 - Label,E-mail 2 - Value,"
        "Phone 1 - Label,Phone 1 - Value,Phone 2 - Label,Phone 2 - Value,Address 1 - Label,"
        "Address 1 - Formatted,Address 1 - Street,Address 1 - City,Website 1 - Label,"
        "Website 1 - Value",
        {"first_name": "First Name", "last_name": "Last Name", "company": "Organization Name",
         "email": "E-mail 1 - Value", "phone": "Phone 1 - Value"},
        ["E-mail 2 - Value"],
    ),
    "google_legacy": (
        "Name,Given Name,Additional Name,Family Name,Yomi Name,Given Name Yomi,"
        "Additional Name Yomi,Family Name Yomi,Name Prefix,Name Suffix,Initials,Nickname,"
        "Short Name,Maiden Name,Birthday,Gender,Location,Billing Information,"
        "Directory Server,Mileage,Occupation,Hobby,Sensitivity,Priority,Subject,Notes,"
        "Language,Photo,Group Membership,E-mail 1 - Type,E-mail 1 - Value,E-mail 2 - Type,"
        "E-mail 2 - Value,Phone 1 - Type,Phone 1 - Value,Organization 1 - Type,"
        "Organization 1 - Name,Organization 1 - Yomi Name,Organization 1 - Title",
        {"first_name": "Given Name", "last_name": "Family Name",
         "company": "Organization 1 - Name", "email": "E-mail 1 - Value",
         "phone": "Phone 1 - Value"},
        ["E-mail 2 - Value"],
    ),
    "outlook_en": (
        '"First Name","Middle Name","Last Name","Title","Suffix","Initials","Web Page",'
        '"Gender","Birthday","Anniversary","Location","Language","Internet Free Busy",'
        '"Notes","E-mail Address","E-mail 2 Address","E-mail 3 Address","Primary Phone",'
        '"Home Phone","Home Phone 2","Mobile Phone","Pager","Home Fax","Home Address",'
        '"Company Main Phone","Business Phone","Business Phone 2","Business Fax",'
        '"Company","Job Title","Department","Office Location"',
        {"first_name": "First Name", "last_name": "Last Name", "company": "Company",
         "email": "E-mail Address", "phone": "Primary Phone"},
        ["E-mail 2 Address", "E-mail 3 Address"],
    ),
    "outlook_de": (
        '"Anrede","Vorname","Weitere Vornamen","Nachname","Suffix","Firma","Abteilung",'
        '"Position","Straße geschäftlich","Ort geschäftlich","Telefon geschäftlich",'
        '"Telefon geschäftlich 2","Mobiltelefon","Telefon privat","E-Mail-Adresse",'
        '"E-Mail-Typ","E-Mail: Angezeigter Name","E-Mail 2: Adresse","E-Mail 2: Typ"',
        {"first_name": "Vorname", "last_name": "Nachname", "company": "Firma",
         "email": "E-Mail-Adresse", "phone": "Telefon geschäftlich"},
        ["E-Mail 2: Adresse"],
    ),
    "outlook_fr": (
        '"Titre","Prénom","Deuxième prénom","Nom","Suffixe","Société","Service","Titre",'
        '"Rue (bureau)","Ville (bureau)","Téléphone bureau","Tél. mobile",'
        '"Téléphone domicile","Adresse de messagerie","Type de messagerie",'
        '"Nom complet de l\'adresse de messagerie","Adresse de messagerie 2"',
        {"first_name": "Prénom", "last_name": "Nom", "company": "Société",
         "email": "Adresse de messagerie", "phone": "Téléphone bureau"},
        ["Adresse de messagerie 2"],
    ),
    "outlook_es": (
        '"Tratamiento","Nombre","Segundo nombre","Apellidos","Sufijo","Organización",'
        '"Departamento","Puesto","Calle del trabajo","Teléfono del trabajo",'
        '"Teléfono móvil","Dirección de correo electrónico","Tipo de correo electrónico",'
        '"Nombre para mostrar del correo electrónico"',
        {"first_name": "Nombre", "last_name": "Apellidos", "company": "Organización",
         "email": "Dirección de correo electrónico", "phone": "Teléfono del trabajo"},
        [],
    ),
    "outlook_it": (
        '"Titolo","Nome","Secondo nome","Cognome","Titolo straniero","Società","Reparto",'
        '"Posizione","Via (uff.)","Telefono ufficio","Cellulare","Abitazione",'
        '"Indirizzo posta elettronica","Tipo posta elettronica",'
        '"Nome visualizzato posta elettronica"',
        {"first_name": "Nome", "last_name": "Cognome", "company": "Società",
         "email": "Indirizzo posta elettronica", "phone": "Telefono ufficio"},
        [],
    ),
    "outlook_nl": (
        '"Titel","Voornaam","Middelste naam","Achternaam","Achtervoegsel","Bedrijf",'
        '"Afdeling","Functie","Straat (werk)","Telefoon op werk","Mobiele telefoon",'
        '"E-mailadres","E-mailtype","Weergavenaam voor e-mail"',
        {"first_name": "Voornaam", "last_name": "Achternaam", "company": "Bedrijf",
         "email": "E-mailadres", "phone": "Telefoon op werk"},
        [],
    ),
    "outlook_pt": (
        '"Tratamento","Nome","Segundo Nome","Sobrenome","Sufixo","Empresa","Departamento",'
        '"Cargo","Rua Comercial","Telefone comercial","Telefone celular",'
        '"Endereço de email","Tipo de email","Nome para exibição do email"',
        {"first_name": "Nome", "last_name": "Sobrenome", "company": "Empresa",
         "email": "Endereço de email", "phone": "Telefone comercial"},
        [],
    ),
    "linkedin": (
        "First Name,Last Name,URL,Email Address,Company,Position,Connected On",
        {"first_name": "First Name", "last_name": "Last Name", "company": "Company",
         "email": "Email Address"},
        [],
    ),
    "hubspot": (
        "Record ID,First Name,Last Name,Email,Phone Number,Company Name,Contact owner,"
        "Lead Status,Create Date",
        {"first_name": "First Name", "last_name": "Last Name", "company": "Company Name",
         "email": "Email", "phone": "Phone Number"},
        [],
    ),
    "salesforce": (
        "Salutation,First Name,Last Name,Title,Account Name,Mailing Street,Mailing City,"
        "Phone,Mobile,Email,Lead Source",
        {"first_name": "First Name", "last_name": "Last Name", "company": "Account Name",
         "email": "Email", "phone": "Phone"},
        [],
    ),
    "mailchimp": (
        "Email Address,First Name,Last Name,Address,Phone Number,Birthday,Company,"
        "MEMBER_RATING,OPTIN_TIME,OPTIN_IP,CONFIRM_TIME,CONFIRM_IP,LATITUDE,LONGITUDE",
        {"first_name": "First Name", "last_name": "Last Name", "company": "Company",
         "email": "Email Address", "phone": "Phone Number"},
        [],
    ),
    "zoho": (
        "Record Id,First Name,Last Name,Account Name,Email,Title,Phone,Mobile,Lead Source",
        {"first_name": "First Name", "last_name": "Last Name", "company": "Account Name",
         "email": "Email", "phone": "Phone"},
        [],
    ),
    "pipedrive": (
        "Person - Name,Person - First name,Person - Last name,Person - Organization,"
        "Person - Email - Work,Person - Email - Home,Person - Phone - Work,"
        "Person - Phone - Mobile,Person - Label",
        {"first_name": "Person - First name", "last_name": "Person - Last name",
         "company": "Person - Organization", "email": "Person - Email - Work",
         "phone": "Person - Phone - Work"},
        ["Person - Email - Home"],
    ),
    "thunderbird": (
        "First Name,Last Name,Display Name,Nickname,Primary Email,Secondary Email,"
        "Screen Name,Work Phone,Home Phone,Fax Number,Pager Number,Mobile Number,"
        "Home Address,Home City,Work Address,Job Title,Department,Organization",
        {"first_name": "First Name", "last_name": "Last Name", "company": "Organization",
         "email": "Primary Email", "phone": "Work Phone"},
        ["Secondary Email"],
    ),
    "roundcube": (
        "First Name,Middle Name,Last Name,Display Name,Nickname,Email Home,Email Work,"
        "Email Other,Phone Mobile,Phone Home,Phone Work,Organization,Department,Job Title",
        {"first_name": "First Name", "last_name": "Last Name", "company": "Organization",
         "email": "Email Home", "phone": "Phone Mobile"},
        ["Email Work", "Email Other"],
    ),
}  # fmt: skip


def header(row: str) -> list[str]:
    names = next(csv.reader(io.StringIO(row)))
    # Outlook FR repeats "Titre": the upload names the second one Titre_2.
    return [n if n not in names[:i] else f"{n}_2" for i, n in enumerate(names)]


@pytest.mark.parametrize("name", list(EXPORTS))
def test_the_export_maps_from_its_real_header(name: str) -> None:
    row, fields, more_emails = EXPORTS[name]
    headers = header(row)
    mapping = suggest_mapping(headers)
    got = {m: headers[i] for i, m in enumerate(mapping) if m and not m.startswith("custom:")}
    assert got == fields
    assert [headers[i] for i in email_columns(mapping)] == [fields["email"], *more_emails]


def test_accents_are_folded_not_deleted() -> None:
    assert suggest_mapping(["PRÉNOM", "Prénom"]) == ["first_name", "custom:Prénom"]
    assert suggest_mapping(["Société"]) == ["company"]


def test_the_preview_names_email_candidates_or_says_there_is_none() -> None:
    headers = ["Name", "Contact", "Courier"]
    notes = mapping_notes(headers, suggest_mapping(headers), [["Ann", "ann@example.com", "x"]])
    assert notes and "no column maps to email" in notes[0]
    assert "closest: Contact" in notes[0] and "stays pending" in notes[0]
    row, _, _ = EXPORTS["google"]
    headers = header(row)
    notes = mapping_notes(headers, suggest_mapping(headers), [])
    assert notes == [
        "email: the first valid address of 'E-mail 1 - Value', 'E-mail 2 - Value', per "
        "row; the other columns stay as custom fields"
    ]
