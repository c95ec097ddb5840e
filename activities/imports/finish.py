"""How a run ends: finalize (completed, counts from the ledger, caches, AI summary, emails,
Redis cleanup) and mark-failed (failed or cancelled, best-effort email)."""

from __future__ import annotations

import logging
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.delivery import delivery, window_deadline
from activities.errors import email_error
from activities.imports.common import ImportSteps
from folksjobs import errors
from folksjobs.catalog import job_by_workflow
from folksjobs.imports import avatars as avatars_repo
from folksjobs.imports import lifecycle
from folksjobs.imports import repo as imports_repo
from folksjobs.imports.repo import ImportRow
from folksjobs.infra import metrics, rediskeys
from folksjobs.models import (
    WF_PROCESS_CSV,
    AvatarCounts,
    ErrorSample,
    FinalizeImport,
    ImportFailure,
    ImportResult,
)
from folksjobs.notify import emails
from folksjobs.notify.ai import fallback_summary
from folksjobs.notify.directory import UserNotFound, get_user
from folksjobs.notify.mailer import Email, EmailSendError
from folksjobs.tenancy import NotAMember, require_member

log = logging.getLogger(__name__)

# The spec's attempts for the job's own failures; a provider's refusal waits instead.
ATTEMPTS = job_by_workflow(WF_PROCESS_CSV).attempts


class FinishSteps(ImportSteps):
    # --- finalize -----------------------------------------------------------------

    @activity.defn(name="finalize")
    async def finalize(self, job: FinalizeImport) -> ImportResult:
        rec = await self._record(job.workspace_id, job.import_id)
        t = await imports_repo.totals(self.pool, job.workspace_id, job.import_id)
        if t.rows != rec.total_rows:
            raise ApplicationError(
                f"ledger holds {t.rows:,} rows, the file {rec.total_rows:,}",
                type=errors.LEDGER_MISMATCH,
                non_retryable=True,
            )
        samples = await imports_repo.first_error_samples(
            self.pool, job.workspace_id, job.import_id, self.settings.error_samples_max
        )
        summary = rec.ai_summary or await self.summarizer.summarize(
            t.rows, t.inserted, t.updated, t.failed, t.duplicates, unchanged=t.unchanged
        )
        duration_ms = int((activity.info().started_time - job.started_at).total_seconds() * 1000)
        if rec.status == "processing":
            await lifecycle.complete(
                self.pool, job.workspace_id, job.import_id, t, samples, summary, duration_ms
            )
            metrics.rows_imported(t.inserted + t.updated)
            metrics.rows_failed(t.failed)
        else:
            duration_ms = rec.duration_ms or duration_ms
        await self._invalidate_stats(job.workspace_id)
        if job.emails:
            for msg in await self._finish_emails(job, rec, t, samples, summary):
                try:
                    await self.sender.send(msg)
                except EmailSendError as e:
                    raise email_error(e) from e
        await self._cleanup(job.import_id)
        avatars = None
        if job.avatars:
            # The email went without waiting for them: what is owed keeps arriving.
            owed = await avatars_repo.owed_count(self.pool, job.workspace_id, job.import_id)
            avatars = AvatarCounts(done=max(0, t.contacts - owed), pending=owed)
        return ImportResult(
            import_id=job.import_id,
            status="completed",
            total_rows=t.rows,
            inserted=t.inserted,
            updated=t.updated,
            unchanged=t.unchanged,
            failed=t.failed,
            duplicates=t.duplicates,
            error_samples=[ErrorSample(**s) for s in samples],
            ai_summary=summary,
            duration_ms=duration_ms,
            avatars=avatars,
        )

    @activity.defn(name="send-import-emails")
    async def send_import_emails(self, job: FinalizeImport) -> None:
        """A completed import's emails, apart from finalize: a provider that is down or
        busy makes them wait up to EMAIL_NOTIFICATION_WINDOW_SECONDS (activities/delivery.py)
        while the import is already completed. Read from the record finalize wrote."""
        s = self.settings
        deadline = window_deadline(s.email_notification_window_seconds)
        async with delivery("import-completed", deadline, ATTEMPTS, s.email_retry_max_seconds):
            rec = await self._record(job.workspace_id, job.import_id)
            t = await imports_repo.totals(self.pool, job.workspace_id, job.import_id)
            samples = await imports_repo.first_error_samples(
                self.pool, job.workspace_id, job.import_id, s.error_samples_max
            )
            summary = rec.ai_summary or fallback_summary(
                t.rows, t.inserted, t.updated, t.failed, t.duplicates, unchanged=t.unchanged
            )
            # Each under its own key: one already sent is dropped by the provider when a
            # later one made the attempt wait.
            for msg in await self._finish_emails(job, rec, t, samples, summary):
                await self.sender.send(msg)

    async def _finish_emails(
        self,
        job: FinalizeImport,
        rec: ImportRow,
        t: imports_repo.Totals,
        samples: list[dict[str, Any]],
        summary: str,
    ) -> list[Email]:
        # The workspace's setting decides both: the completion email and its error report.
        if not await imports_repo.notify_on_complete(self.pool, job.workspace_id):
            return []
        try:
            await require_member(self.pool, job.workspace_id, job.user_id)
            user = await get_user(self.pool, job.user_id)
        except (UserNotFound, NotAMember) as e:
            log.warning("import %s: no completion email: %s", job.import_id, e)
            return []
        msgs = [
            emails.import_completed(
                user.email,
                rec.file_name,
                t.rows,
                t.inserted,
                t.updated,
                t.failed,
                t.duplicates,
                summary,
                f"{job.workflow_id}/import-completed",
                unchanged=t.unchanged,
            )
        ]
        if t.rows and t.failed / t.rows > self.settings.error_report_threshold:
            msgs.append(
                emails.import_error_report(
                    user.email,
                    rec.file_name,
                    t.rows,
                    t.failed,
                    [(s["row"], s["reason"]) for s in samples],
                    f"{job.workflow_id}/import-error-report",
                )
            )
        return msgs

    async def _invalidate_stats(self, workspace_id: str) -> None:
        await self._delete_pattern(rediskeys.stats_pattern(workspace_id))

    async def _cleanup(self, import_id: str) -> None:
        await self._delete_pattern(rediskeys.import_pattern(import_id))

    async def _delete_pattern(self, pattern: str) -> None:
        batch: list[bytes] = []
        async for k in self.redis.scan_iter(match=pattern, count=1000):
            batch.append(k)
            if len(batch) >= 1000:
                await self.redis.delete(*batch)
                batch = []
        if batch:
            await self.redis.delete(*batch)

    # --- the failure path ---------------------------------------------------------

    @activity.defn(name="mark-failed")
    async def mark_failed(self, f: ImportFailure) -> None:
        """Status failed (or cancelled), caches invalidated, best-effort email, keys removed."""
        rec = await imports_repo.get(self.pool, f.workspace_id, f.import_id)
        if rec is None or rec.workflow_id != f.workflow_id:
            # Not an import this run holds (a caller paired the ids, or another run has
            # it): nothing of it (its record, its chunks in Redis) may be touched.
            log.warning("import %s: not held by %s; nothing marked", f.import_id,
                        f.workflow_id)  # fmt: skip
            return
        await lifecycle.end(
            self.pool, f.workspace_id, f.import_id, cancelled=f.cancelled, error=f.error
        )
        await self._invalidate_stats(f.workspace_id)
        await self._cleanup(f.import_id)
        if f.cancelled:
            return
        try:
            # Only about an import of the workspace, only to one of its members.
            await require_member(self.pool, f.workspace_id, f.user_id)
            user = await get_user(self.pool, f.user_id)
            await self.sender.send(
                emails.import_failed(
                    user.email, rec.file_name, f.error, f"{f.workflow_id}/import-failed"
                )
            )
        except Exception as e:  # best effort: must never hide the import's own error
            log.error("import %s: failure email not sent (%s)", f.import_id, type(e).__name__)
