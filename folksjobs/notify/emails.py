"""The messages the jobs send: subject, text and HTML bodies, built from plain values.

Every value that came from a user (names, file names, error reasons) is HTML-escaped.
"""

from __future__ import annotations

from datetime import date
from html import escape

from folksjobs.notify.mailer import Email


def _html(title: str, paragraphs: list[str], items: list[str] | None = None) -> str:
    body = "".join(f"<p>{escape(p)}</p>" for p in paragraphs)
    if items:
        body += "<ul>" + "".join(f"<li>{escape(i)}</li>" for i in items) + "</ul>"
    return (
        '<!doctype html><html><body style="font-family:sans-serif">'
        f'<h2>{escape(title)}</h2>{body}<p style="color:#888">— folksjobs</p></body></html>'
    )


def _text(title: str, paragraphs: list[str], items: list[str] | None = None) -> str:
    lines = [title, "", *paragraphs]
    if items:
        lines += ["", *(f"- {i}" for i in items)]
    return "\n".join(lines) + "\n\n— folksjobs\n"


def _email(
    to: str, subject: str, paragraphs: list[str], key: str, tag: str, items: list[str] | None = None
) -> Email:
    return Email(
        to=to,
        subject=subject,
        text=_text(subject, paragraphs, items),
        html=_html(subject, paragraphs, items),
        idempotency_key=key,
        tags=(tag,),
    )


def welcome(to: str, name: str | None, app_url: str, key: str) -> Email:
    hello = f"Hi {name}," if name else "Hi,"
    return _email(
        to,
        "Welcome to folksjobs",
        [
            hello,
            "Your account is ready. Import your contacts from a CSV file to get started.",
            f"Open the app: {app_url}",
        ],
        key,
        "welcome",
    )


def import_completed(
    to: str,
    file_name: str,
    total: int,
    inserted: int,
    updated: int,
    failed: int,
    duplicates: int,
    summary: str,
    key: str,
    *,
    unchanged: int = 0,
) -> Email:
    return _email(
        to,
        f"Your import of {file_name} is complete",
        [summary],
        key,
        "import-completed",
        items=[
            f"Rows in file: {total:,}",
            f"New contacts: {inserted:,}",
            f"Updated contacts: {updated:,}",
            f"Unchanged contacts: {unchanged:,}",
            f"Failed rows: {failed:,}",
            f"Skipped duplicates: {duplicates:,}",
        ],
    )


def import_error_report(
    to: str, file_name: str, total: int, failed: int, samples: list[tuple[int, str]], key: str
) -> Email:
    rate = failed / total * 100 if total else 0.0
    return _email(
        to,
        f"{failed:,} rows of {file_name} could not be imported",
        [f"{failed:,} of {total:,} rows ({rate:.1f}%) failed. The first errors:"],
        key,
        "import-error-report",
        items=[f"Row {row}: {reason}" for row, reason in samples],
    )


def import_failed(to: str, file_name: str, error: str, key: str) -> Email:
    return _email(
        to,
        f"Your import of {file_name} failed",
        ["The import stopped and no further rows will be processed.", f"Reason: {error}"],
        key,
        "import-failed",
    )


def weekly_digest(
    to: str,
    workspace_name: str,
    week_start: date,
    total: int,
    new: int,
    imports: int,
    top_domains: list[tuple[str, int]],
    app_url: str,
    key: str,
) -> Email:
    items = [
        f"New contacts: {new:,}",
        f"Total contacts: {total:,}",
        f"Imports completed: {imports:,}",
    ]
    if top_domains:
        items.append("Top domains: " + ", ".join(f"{d} ({n:,})" for d, n in top_domains))
    return _email(
        to,
        f"Your week in {workspace_name}: {new:,} new contact{'' if new == 1 else 's'}",
        [
            f"Here is what happened in {workspace_name} in the week of {week_start:%d %B %Y}.",
            f"Open the app: {app_url}",
        ],
        key,
        "weekly-digest",
        items=items,
    )


def export_completed(to: str, row_count: int, location: str, key: str) -> Email:
    return _email(
        to,
        "Your contacts export is ready",
        [f"{row_count:,} contacts were exported to a CSV file.", f"Download it: {location}"],
        key,
        "export-completed",
    )
