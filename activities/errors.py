"""Turning service errors into Temporal errors: what must not retry says so."""

from __future__ import annotations

from temporalio.exceptions import ApplicationError

from folksjobs import errors
from folksjobs.notify.mailer import EmailSendError


def email_error(e: EmailSendError) -> ApplicationError:
    return ApplicationError(
        str(e),
        type=errors.EMAIL_PERMANENT_FAILURE if e.permanent else errors.EMAIL_SEND_FAILED,
        non_retryable=e.permanent,
    )
