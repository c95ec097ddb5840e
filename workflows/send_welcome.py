"""send-welcome (event user/signed.up, retries 2 => at most 3 attempts).

| step         | what it does                                               |
|--------------|------------------------------------------------------------|
| send-welcome | looks the user up by id and sends the welcome email; a     |
|              | provider that is down or busy makes it wait (up to         |
|              | EMAIL_WELCOME_WINDOW_SECONDS), see activities/delivery.py  |
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.welcome import WelcomeActivities
    from folksjobs import errors
    from folksjobs.catalog import job_by_workflow
    from folksjobs.infra.ui import set_job_attributes
    from folksjobs.models import (
        WF_SEND_WELCOME,
        SendWelcomeInput,
        SendWelcomeResult,
        WelcomeEmailJob,
    )
    from folksjobs.notify.retry import EMAIL_DELIVERY, EMAIL_RETRY

RETRY = RetryPolicy(
    maximum_attempts=job_by_workflow(WF_SEND_WELCOME).attempts,
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    non_retryable_error_types=[errors.USER_NOT_FOUND, errors.EMAIL_PERMANENT_FAILURE],
)


@workflow.defn(name=WF_SEND_WELCOME)
class SendWelcome:
    @workflow.run
    async def run(self, inp: SendWelcomeInput) -> SendWelcomeResult:
        set_job_attributes(status="processing")
        try:
            result = await workflow.execute_activity_method(
                WelcomeActivities.send_welcome,
                WelcomeEmailJob(
                    user_id=inp.user_id, idempotency_key=f"{workflow.info().workflow_id}/welcome"
                ),
                start_to_close_timeout=timedelta(seconds=60),
                retry_policy=EMAIL_RETRY if workflow.patched(EMAIL_DELIVERY) else RETRY,
            )
        except ActivityError:
            set_job_attributes(status="failed")
            raise
        set_job_attributes(status="completed")
        return result
