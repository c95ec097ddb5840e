"""The one-sentence AI summary of an import (spec: Claude Haiku, 10 s timeout, fallback).

The prompt holds aggregate counts only, never contact data. The SDK's own retries are off
so they do not multiply with Temporal's; any failure (429, 529, an outage), the 10 s limit
(AI_TIMEOUT_SECONDS, the wait for one of AI_CONCURRENCY slots counted in it) or a missing
key gives the plain fallback sentence.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from folksjobs.settings import Settings

if TYPE_CHECKING:
    from anthropic import AsyncAnthropic

log = logging.getLogger(__name__)


def fallback_summary(
    total: int, inserted: int, updated: int, failed: int, duplicates: int, *, unchanged: int = 0
) -> str:
    return (
        f"Processed {total:,} rows: {inserted:,} new contacts, {updated:,} updated, "
        + (f"{unchanged:,} unchanged, " if unchanged else "")
        + f"{failed:,} failed and {duplicates:,} duplicates skipped."
    )


class Summarizer:
    def __init__(self, settings: Settings) -> None:
        self.timeout = settings.ai_timeout_seconds
        self.model = settings.anthropic_model
        key = settings.anthropic_api_key.get_secret_value() if settings.anthropic_api_key else None
        self.client: AsyncAnthropic | None = None
        if key:
            # Imported only when a key is set: the SDK takes ~2 s to import, which every
            # CLI command that opens the services (`import status`, ...) would otherwise pay.
            from anthropic import AsyncAnthropic

            self.client = AsyncAnthropic(
                api_key=key,
                base_url=settings.anthropic_base_url,
                timeout=self.timeout,
                max_retries=0,
            )
        self.sem = asyncio.Semaphore(settings.ai_concurrency)

    async def summarize(
        self,
        total: int,
        inserted: int,
        updated: int,
        failed: int,
        duplicates: int,
        *,
        unchanged: int = 0,
    ) -> str:
        fallback = fallback_summary(
            total, inserted, updated, failed, duplicates, unchanged=unchanged
        )
        if self.client is None:
            return fallback
        prompt = (
            "Write one short, friendly sentence summarising this contact import for the user. "
            f"Rows in file: {total}. New contacts: {inserted}. Updated contacts: {updated}. "
            f"Contacts unchanged (already stored as in the file): {unchanged}. "
            f"Failed rows: {failed}. Duplicate rows skipped: {duplicates}."
        )
        try:
            # One limit for the whole summary, the wait for a slot included: under 429/529
            # or an outage the slots are held by calls that time out, and the import's
            # completion must not wait a multiple of the spec's 10 s for its sentence.
            async with asyncio.timeout(self.timeout), self.sem:
                msg = await self.client.messages.create(
                    model=self.model,
                    max_tokens=120,
                    messages=[{"role": "user", "content": prompt}],
                )
            text = "".join(getattr(b, "text", "") for b in msg.content).strip()
            return text.splitlines()[0] if text else fallback
        except Exception as e:  # any failure of a best-effort summary: use the fallback
            log.warning(
                "AI summary unavailable (%s); using the fallback sentence", type(e).__name__
            )
            return fallback

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()
