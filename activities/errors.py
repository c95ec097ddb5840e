"""Turning service errors into Temporal errors: what must not retry says so."""

from __future__ import annotations

from temporalio.exceptions import ApplicationError

from folksjobs.notify.mailer import EmailSendError


def email_error(e: EmailSendError) -> ApplicationError:
    return ApplicationError(
        str(e),
        type="EmailPermanentFailure" if e.permanent else "EmailSendFailed",
        non_retryable=e.permanent,
    )
