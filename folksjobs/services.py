"""The clients the activities are built with, created once from Settings and closed once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp
import asyncpg
from redis.asyncio import Redis

from folksjobs.infra import db
from folksjobs.infra.blob import BlobStore, build_blob_store
from folksjobs.notify.ai import Summarizer
from folksjobs.notify.gravatar import Gravatar
from folksjobs.notify.mailer import CountingSender, EmailSender, LimitedSender, build_sender
from folksjobs.notify.pace import Pace, PacedSender
from folksjobs.settings import Settings


@dataclass
class Services:
    settings: Settings
    pool: asyncpg.Pool
    redis: Redis
    http: aiohttp.ClientSession
    blob: BlobStore
    email: EmailSender
    gravatar: Gravatar
    ai: Summarizer


class MissingServiceUrls(RuntimeError):
    """DATABASE_URL or REDIS_URL is not set."""


def require_urls(settings: Settings) -> tuple[str, str]:
    if not settings.database_url or not settings.redis_url:
        raise MissingServiceUrls(
            "DATABASE_URL and REDIS_URL must be set (or run `python -m starter dev`, "
            "which starts embedded PostgreSQL and Valkey and sets them)"
        )
    return settings.database_url, settings.redis_url


@asynccontextmanager
async def open_services(settings: Settings, *, pool_size: int = 20) -> AsyncIterator[Services]:
    dsn, redis_url = require_urls(settings)
    pool = await db.create_pool(dsn, max_size=pool_size)
    redis = Redis.from_url(redis_url, decode_responses=False)
    http = aiohttp.ClientSession()
    blob = build_blob_store(settings)
    gravatar = Gravatar(
        http,
        redis,
        settings.gravatar_base_url,
        enabled=settings.gravatar_enabled,
        concurrency=settings.gravatar_concurrency,
        timeout=settings.gravatar_timeout_seconds,
        cache_ttl=settings.gravatar_cache_ttl_seconds,
        rate=settings.gravatar_rate_per_second,
        breaker_failures=settings.gravatar_breaker_failures,
        breaker_seconds=settings.gravatar_breaker_seconds,
    )
    ai = Summarizer(settings)
    try:
        backend = build_sender(settings, http)
        if settings.email_backend == "http":
            pace = Pace(redis, settings.email_rate_per_second, settings.email_max_wait_seconds)
            backend = PacedSender(backend, pace, settings.email_outage_hold_seconds)
        limited = LimitedSender(backend, settings.email_concurrency)
        sender = CountingSender(limited)
        yield Services(settings, pool, redis, http, blob, sender, gravatar, ai)
    finally:
        await ai.close()
        await blob.close()
        await http.close()
        await redis.aclose()
        await pool.close()
