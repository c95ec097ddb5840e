"""The RetryPolicy of every activity that emails someone (activities/delivery.py says why).

Attempts are unlimited: the email's delivery window and the spec's count of the job's own
failures end it, inside the activity, with a non-retryable error. The intervals here only
pace a job's own failures and attempts that died without an answer; a provider's refusal
sets its own delay (Retry-After, or a backoff capped at EMAIL_RETRY_MAX_SECONDS).
"""

from __future__ import annotations

from datetime import timedelta

from temporalio.common import RetryPolicy

from folksjobs import errors

EMAIL_RETRY = RetryPolicy(
    maximum_attempts=0,
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=60),
    non_retryable_error_types=[
        errors.USER_NOT_FOUND,
        errors.OWNER_NOT_FOUND,
        errors.WORKSPACE_NOT_FOUND,
        errors.EMAIL_PERMANENT_FAILURE,
        errors.EMAIL_GIVEN_UP,
    ],
)

# The patch (workflow.patched) of every workflow that emails: runs started before it sent
# with the spec's attempts, where a provider outage used them up and lost the email.
EMAIL_DELIVERY = "email-delivery-window"
