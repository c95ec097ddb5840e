"""send-welcome's side effect: the welcome email."""

from __future__ import annotations

import asyncpg
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.base import ActivityClass
from activities.errors import email_error
from folksjobs import errors
from folksjobs.models import SendWelcomeResult, WelcomeEmailJob
from folksjobs.notify import emails
from folksjobs.notify.directory import UserDeleted, UserNotFound, get_user
from folksjobs.notify.mailer import EmailSender, EmailSendError


class WelcomeActivities(ActivityClass):
    def __init__(self, pool: asyncpg.Pool, sender: EmailSender, app_url: str) -> None:
        self.pool = pool
        self.sender = sender
        self.app_url = app_url

    @activity.defn(name="send-welcome")
    async def send_welcome(self, job: WelcomeEmailJob) -> SendWelcomeResult:
        try:
            user = await get_user(self.pool, job.user_id)
        except UserDeleted:
            # user/deleted came first: nothing goes to them any more.
            return SendWelcomeResult(message_id="", backend="skipped: user deleted")
        except UserNotFound as e:
            raise ApplicationError(str(e), type=errors.USER_NOT_FOUND, non_retryable=True) from e
        msg = emails.welcome(user.email, user.name, self.app_url, job.idempotency_key)
        try:
            receipt = await self.sender.send(msg)
        except EmailSendError as e:
            raise email_error(e) from e
        return SendWelcomeResult(message_id=receipt.message_id, backend=receipt.backend)

    ACTIVITIES = (send_welcome,)
