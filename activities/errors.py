"""Turning service errors into Temporal errors: what must not retry says so."""

from __future__ import annotations

from datetime import timedelta

from temporalio.exceptions import ApplicationError

from folksjobs import errors
from folksjobs.notify.mailer import EmailSendError


def email_error(e: EmailSendError) -> ApplicationError:
    """A refusal inside a step with the job's own RetryPolicy (the import's finalize): the
    next attempt waits for the provider's Retry-After when it gave one. The steps that only
    email use activities/delivery.py instead, which waits up to the email's window."""
    return ApplicationError(
        str(e),
        type=errors.EMAIL_PERMANENT_FAILURE if e.permanent else errors.EMAIL_SEND_FAILED,
        non_retryable=e.permanent,
        next_retry_delay=(
            timedelta(seconds=e.retry_after) if e.retry_after and not e.permanent else None
        ),
    )
