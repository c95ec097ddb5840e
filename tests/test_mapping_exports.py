"""Auto-mapping of the exports people have, each from its real header row."""

from __future__ import annotations

import csv
import io

import asyncpg
import pytest
from temporalio.client import Client

from folksjobs.exports import layout
from folksjobs.imports import mapping
from folksjobs.imports.mapping import email_columns, mapping_notes, suggest_mapping
from tests.conftest import Stack, Tenant, make_settings, running_worker
from tests.importing import contacts, import_bytes

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


def test_our_exports_tags_map_to_tags_and_another_files_stay_custom() -> None:
    """Our own export's tags column is the tags field (its names split as the export
    joins them); another file's Tags column stays a custom field unless mapped."""
    ours = layout.header(["plan"])
    assert suggest_mapping(ours)[5:] == ["", "", "", mapping.TAGS, "custom:plan"]
    assert suggest_mapping(["email", "Tags"]) == ["email", "custom:Tags"]
    assert mapping.apply_overrides(["email", "Tags"], ["email", "custom:Tags"],
                                   ["Tags=tags"]) == ["email", "tags"]  # fmt: skip
    assert layout.split_tags(" vip; big client;;vip ;日本") == ["vip", "big client", "日本"]


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


# One per language of mapping._LOCALISED: Thunderbird's export header in that locale (its
# importMsgs.properties names, in the export's order), or Outlook's as Roundcube lists it,
# or the plain words of a hand-made sheet.
LOCALISED: dict[str, tuple[str, dict[str, str], list[str]]] = {
    "ru_plain": (
        "Имя,Фамилия,Компания,Телефон,Email,Должность",
        {"first_name": "Имя", "last_name": "Фамилия", "company": "Компания",
         "phone": "Телефон", "email": "Email"},
        [],
    ),
    "ru_thunderbird": (
        "Имя,Фамилия,Отображаемое имя,Псевдоним,Адрес электронной почты,"
        "Альтернативный адрес электронной почты,Рабочий телефон,Домашний телефон,"
        "Номер факса,Номер пейджера,Номер сотового телефона,Должность,Отдел,Организация",
        {"first_name": "Имя", "last_name": "Фамилия", "company": "Организация",
         "email": "Адрес электронной почты", "phone": "Рабочий телефон"},
        ["Альтернативный адрес электронной почты"],
    ),
    "uk_thunderbird": (
        "Ім’я,Прізвище,\"Ім’я, що відображається\",Псевдонім,Адреса електронної пошти,"
        "Альтернативна адреса електронної пошти,Телефон (роб.),Телефон,Номер факсу,"
        "Номер мобільного телефону,Посада,Відділ,Організація",
        {"first_name": "Ім’я", "last_name": "Прізвище", "company": "Організація",
         "email": "Адреса електронної пошти", "phone": "Телефон (роб.)"},
        ["Альтернативна адреса електронної пошти"],
    ),
    "pl_thunderbird": (
        "Imię,Nazwisko,Wyświetlana nazwa,Pseudonim,Podstawowy e-mail,Dodatkowy e-mail,"
        "Telefonu służbowy,Telefon domowy,Numer faksu,Pager,Numer telefonu komórkowego,"
        "Stanowisko,Departament,Firma/Organizacja",
        {"first_name": "Imię", "last_name": "Nazwisko", "company": "Firma/Organizacja",
         "email": "Podstawowy e-mail", "phone": "Telefonu służbowy"},
        ["Dodatkowy e-mail"],
    ),
    "pl_outlook": (
        "Tytuł,Imię,Drugie imię,Nazwisko,Firma,Telefon służbowy,Telefon komórkowy,"
        "Adres e-mail",
        {"first_name": "Imię", "last_name": "Nazwisko", "company": "Firma",
         "email": "Adres e-mail", "phone": "Telefon służbowy"},
        [],
    ),
    "cs_thunderbird": (
        "Křestní jméno,Příjmení,Zobrazené jméno,Přezdívka,První e-mail,Druhý e-mail,"
        "Telefon do zaměstnání,Telefon domů,Faxové číslo,Číslo na pager,Číslo na mobil,"
        "Pozice,Oddělení,Společnost",
        {"first_name": "Křestní jméno", "last_name": "Příjmení", "company": "Společnost",
         "email": "První e-mail", "phone": "Telefon do zaměstnání"},
        ["Druhý e-mail"],
    ),
    "tr_thunderbird": (
        "İsim,Soyadı,Görüntülenecek isim,Takma adı,Birinci e-posta,İkinci e-posta,"
        "İş telefonu,Ev telefonu,Faks numarası,Çağrı cihazı,Cep telefonu,İş unvanı,Bölüm,"
        "Kurum",
        {"first_name": "İsim", "last_name": "Soyadı", "company": "Kurum",
         "email": "Birinci e-posta", "phone": "İş telefonu"},
        ["İkinci e-posta"],
    ),
    "tr_upper": (
        "İSİM,SOYADI,ŞİRKET,TELEFON,E-POSTA",
        {"first_name": "İSİM", "last_name": "SOYADI", "company": "ŞİRKET",
         "phone": "TELEFON", "email": "E-POSTA"},
        [],
    ),
    "it_outlook": (
        "Nome,Cognome,Società,Indirizzo E-mail,Indirizzo E-mail 2,Telefono di Lavoro,"
        "Telefono Mobile",
        {"first_name": "Nome", "last_name": "Cognome", "company": "Società",
         "email": "Indirizzo E-mail", "phone": "Telefono di Lavoro"},
        ["Indirizzo E-mail 2"],
    ),
    "pt_br": (
        "Primeiro nome,Último nome,Mostrar nome,E-mail primário,E-mail secundário,"
        "Fone comercial,Celular,Organização",
        {"first_name": "Primeiro nome", "last_name": "Último nome",
         "company": "Organização", "email": "E-mail primário", "phone": "Fone comercial"},
        ["E-mail secundário"],
    ),
    "nl_thunderbird": (
        "Voornaam,Achternaam,Weergavenaam,Bijnaam,Eerste e-mail,Tweede e-mail,"
        "Telefoon werk,Telefoon thuis,Faxnummer,Piepernummer,Mobiel nummer,Werkfunctie,"
        "Afdeling,Organisatie",
        {"first_name": "Voornaam", "last_name": "Achternaam", "company": "Organisatie",
         "email": "Eerste e-mail", "phone": "Telefoon werk"},
        ["Tweede e-mail"],
    ),
    "ja_thunderbird": (
        "名,姓,表示名,ニックネーム,メールアドレス,別のメールアドレス,勤務先の電話番号,"
        "自宅の電話番号,FAX 番号,ポケットベル番号,携帯電話番号,役職,部門,組織",
        {"first_name": "名", "last_name": "姓", "company": "組織", "email": "メールアドレス",
         "phone": "勤務先の電話番号"},
        ["別のメールアドレス"],
    ),
    "zh_cn_thunderbird": (
        "名字,姓氏,显示姓名,昵称,主要电子邮件,备用电子邮件,工作电话,家庭电话,传真号码,"
        "寻呼机号码,移动电话号码,职务,部门,公司",
        {"first_name": "名字", "last_name": "姓氏", "company": "公司",
         "email": "主要电子邮件", "phone": "工作电话"},
        ["备用电子邮件"],
    ),
    "zh_tw_outlook": (
        "姓氏,名字,公司,商務電話,行動電話,電子郵件地址",
        {"first_name": "名字", "last_name": "姓氏", "company": "公司",
         "email": "電子郵件地址", "phone": "商務電話"},
        [],
    ),
    "ko_thunderbird": (
        "이름,성,표시명,애칭,기본 메일,추가 메일,직장 전화,자택 전화,팩스,호출기,휴대폰,"
        "직위,부서,회사명",
        {"first_name": "이름", "last_name": "성", "company": "회사명", "email": "기본 메일",
         "phone": "직장 전화"},
        ["추가 메일"],
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", list(LOCALISED))
def test_a_localised_export_maps_from_its_header(name: str) -> None:
    row, fields, more_emails = LOCALISED[name]
    headers = header(row)
    mapping = suggest_mapping(headers)
    got = {m: headers[i] for i, m in enumerate(mapping) if m and not m.startswith("custom:")}
    assert got == fields
    assert [headers[i] for i in email_columns(mapping)] == [fields["email"], *more_emails]


def test_every_language_has_its_test_and_no_word_means_two_fields() -> None:
    tested = {name.split("_")[0] for name in LOCALISED}
    assert set(mapping._LOCALISED) <= tested
    meaning: dict[str, str] = {}
    for field, names in mapping.SYNONYMS.items():
        for n in names:
            key = mapping._norm(n)
            assert key, n
            assert meaning.setdefault(key, field) == field, f"{n!r}: {meaning[key]} and {field}"


async def test_a_russian_excel_file_imports_with_its_names(
    client: Client, stack: Stack, tenant: Tenant, task_queue: str, owner_pool: asyncpg.Pool
) -> None:
    """As the issue had it: Excel's Russian CSV (cp1251, semicolons), imported with the
    suggested mapping alone (the CLI's --yes), gets its names, company and phone."""
    rows = ["Имя;Фамилия;Компания;Телефон;Email"] + [
        f"Иван{i};Петров{i};ООО Ромашка;+7 495 123-45-6{i};ivan{i}@example.ru" for i in range(8)
    ]
    data = ("\r\n".join(rows) + "\r\n").encode("cp1251")
    settings = make_settings(stack, temporal_task_queue=task_queue)
    async with running_worker(client, settings, task_queue) as services:
        up, result = await import_bytes(
            client, services, settings, tenant.workspace_id, tenant.user_id, data
        )
    assert up.mapping == ["first_name", "last_name", "company", "phone", "email"]
    assert (result["inserted"], result["failed"]) == (8, 0)
    ivan = (await contacts(owner_pool, tenant.workspace_id))["ivan3@example.ru"]
    assert (ivan["first_name"], ivan["last_name"], ivan["company"], ivan["phone"]) == (
        "Иван3", "Петров3", "ООО Ромашка", "+7 495 123-45-63",
    )  # fmt: skip
    assert ivan["custom_fields"] in ({}, "{}")
