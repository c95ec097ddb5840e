"""One email's attempt inside its delivery window: what waits, what fails, what gives up.

The spec's retry counts (send-welcome 2, weekly-digest 1) are about failures of the job's
own logic: a database that is down, a bug. A provider that is down or busy is not such a
failure: the email waits for it, up to its delivery window (EMAIL_*_WINDOW_SECONDS). So an
email activity runs with unlimited attempts in its RetryPolicy, and this context sorts
what ends an attempt:

- a temporary refusal (429, 5xx, timeout, no turn soon enough) is retried by Temporal
  after the provider's Retry-After or a backoff (next_retry_delay), counted as deferred;
- a permanent refusal (400, 401, 403, 422) fails at once with the provider's reason;
- still refused when the next try would fall after the window: EmailGivenUp, with the
  provider's last answer;
- any other error is the job's own: it counts against the spec's attempts. The count and
  the last refusal are kept in the activity's heartbeat details, which Temporal hands to
  the next attempt (and shows in the UI's pending activity).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Literal

from temporalio import activity
from temporalio.exceptions import ApplicationError

from folksjobs import errors
from folksjobs.infra import metrics
from folksjobs.models import DigestWeek
from folksjobs.notify.mailer import EmailSendError
from folksjobs.settings import Settings

Verdict = Literal["refused", "given_up"]

# The digest is sent weekly: the next one is due this long after a run's scheduled time.
DIGEST_PERIOD = timedelta(days=7)


def digest_deadline(week: DigestWeek, settings: Settings) -> datetime:
    """Until shortly before the next digest is due: a late digest must not arrive after
    the next one. A run started after that (a backfill of a past week, a manual run) is
    still given EMAIL_NOTIFICATION_WINDOW_SECONDS from its first try."""
    due = week.window_end + DIGEST_PERIOD - timedelta(seconds=settings.email_digest_margin_seconds)
    return max(due, window_deadline(settings.email_notification_window_seconds))


def window_deadline(seconds: float) -> datetime:
    """`seconds` after the activity was first scheduled (the same on every attempt)."""
    return activity.info().scheduled_time + timedelta(seconds=seconds)


def _carried() -> tuple[int, str, bool]:
    """What the previous attempt left in its heartbeat details: the job's own failures so
    far, the provider's last refusal, whether the workflow was told the email waits."""
    details = activity.info().heartbeat_details
    own = int(details[0]) if details else 0
    last = str(details[1]) if len(details) > 1 else "none (no attempt got an answer)"
    told = bool(details[2]) if len(details) > 2 else False
    return own, last, told


def _given_up(kind: str, deadline: datetime, reason: str) -> ApplicationError:
    metrics.email_given_up(kind)
    return ApplicationError(
        f"{kind} email given up: its delivery window closed at {deadline:%Y-%m-%d %H:%M:%S} UTC"
        f" after {activity.info().attempt} attempt(s); last answer: {reason}",
        type=errors.EMAIL_GIVEN_UP,
        non_retryable=True,
    )


def _delay(e: EmailSendError, retry_max: float) -> float:
    """The provider's Retry-After, not our backoff, when it said when."""
    if e.retry_after is not None:
        return e.retry_after
    return min(retry_max, 2.0 ** (activity.info().attempt - 1))


def settled(e: EmailSendError, deadline: datetime, retry_max: float) -> Verdict | None:
    """How a refusal ends the email: refused for good, or given up because the next try
    would fall after its window; None while it may still wait."""
    if e.permanent:
        return "refused"
    if _delay(e, retry_max) >= (deadline - datetime.now(UTC)).total_seconds():
        return "given_up"
    return None


def refusal_error(
    e: EmailSendError, kind: str, deadline: datetime, retry_max: float
) -> ApplicationError:
    """The provider's refusal as the attempt's failure (see the module docstring)."""
    verdict = settled(e, deadline, retry_max)
    if verdict == "refused":
        return ApplicationError(str(e), type=errors.EMAIL_PERMANENT_FAILURE, non_retryable=True)
    if verdict == "given_up":
        return _given_up(kind, deadline, str(e))
    delay = _delay(e, retry_max)
    metrics.email_deferred(kind)
    return ApplicationError(
        f"{e}; {kind} email waits {delay:.1f} s",
        type=errors.EMAIL_SEND_FAILED,
        next_retry_delay=timedelta(seconds=max(delay, 0.1)),
    )


@asynccontextmanager
async def delivery(
    kind: str,
    deadline: datetime,
    attempts: int,
    retry_max: float,
    waits: Callable[[], Awaitable[None]] | None = None,
) -> AsyncIterator[None]:
    """The attempt's body runs inside; `waits` is called on the email's first deferral
    (the digest tells its workflow, which counts it as waiting)."""
    own, last, told = _carried()
    if datetime.now(UTC) >= deadline:
        # Reached when an attempt ended without a refusal to judge (a worker crash, a
        # start-to-close timeout, the job's own failure) and the window closed meanwhile.
        raise _given_up(kind, deadline, last)
    try:
        yield
    except EmailSendError as e:
        failure = refusal_error(e, kind, deadline, retry_max)
        if failure.type == errors.EMAIL_SEND_FAILED and waits is not None and not told:
            try:
                await waits()
                told = True
            except Exception as err:  # the count is cosmetic: the email still waits
                activity.logger.warning("could not report a waiting email: %s", err)
        activity.heartbeat(own, str(e)[:500], told)
        raise failure from e
    except ApplicationError:
        raise
    except Exception as e:
        own += 1
        if own >= attempts:
            raise ApplicationError(
                f"{type(e).__name__}: {e} ({own} of {attempts} attempts failed)",
                type=type(e).__name__,
                non_retryable=True,
            ) from e
        activity.heartbeat(own, last, told)
        raise
