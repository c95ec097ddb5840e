"""send-welcome's side effect: the welcome email."""

from __future__ import annotations

import asyncpg
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.base import ActivityClass
from activities.delivery import delivery, window_deadline
from folksjobs import errors
from folksjobs.catalog import job_by_workflow
from folksjobs.models import WF_SEND_WELCOME, SendWelcomeResult, WelcomeEmailJob
from folksjobs.notify import emails
from folksjobs.notify.directory import UserDeleted, UserNotFound, get_user
from folksjobs.notify.mailer import EmailSender
from folksjobs.settings import Settings

ATTEMPTS = job_by_workflow(WF_SEND_WELCOME).attempts


class WelcomeActivities(ActivityClass):
    def __init__(self, pool: asyncpg.Pool, sender: EmailSender, settings: Settings) -> None:
        self.pool = pool
        self.sender = sender
        self.settings = settings

    @activity.defn(name="send-welcome")
    async def send_welcome(self, job: WelcomeEmailJob) -> SendWelcomeResult:
        s = self.settings
        deadline = window_deadline(s.email_welcome_window_seconds)
        async with delivery("welcome", deadline, ATTEMPTS, s.email_retry_max_seconds):
            try:
                user = await get_user(self.pool, job.user_id)
            except UserDeleted:
                # user/deleted came first: nothing goes to them any more.
                return SendWelcomeResult(message_id="", backend="skipped: user deleted")
            except UserNotFound as e:
                raise ApplicationError(
                    str(e), type=errors.USER_NOT_FOUND, non_retryable=True
                ) from e
            msg = emails.welcome(user.email, user.name, s.app_url, job.idempotency_key)
            receipt = await self.sender.send(msg)
        return SendWelcomeResult(message_id=receipt.message_id, backend=receipt.backend)

    ACTIVITIES = (send_welcome,)
