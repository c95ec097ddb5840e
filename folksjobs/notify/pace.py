"""One send rate for the whole cluster, and the provider's "wait" obeyed by every worker.

Every request to the email provider takes a turn from one schedule kept in Redis: a
script reserves the next free instant (`EMAIL_RATE_PER_SECOND` apart) atomically, on
Redis's clock, so workers on different machines with different clocks share one rate.
A 429's Retry-After, or a 5xx/timeout (held `EMAIL_OUTAGE_HOLD_SECONDS`), moves a second
key, `email:hold-until`, forward: no turn is given before it, so one activity's refusal
slows every sender at once, and an outage is probed a few times, not by every waiting
email.

Why not a task-queue rate limit (`max_task_queue_activities_per_second`): it paces the
activities a queue dispatches, not the requests the provider counts. A digest activity
that finds nothing new to say sends nothing and would still spend a turn (most of
100,000 workspaces, most weeks); one batch request carries up to 100 digests; an
activity deferred by a 429 would come back at the queue's rate, not at the time the
provider named; and lowering a queue's rate on a 429 means an admin API call from the
worker. The turn here is taken at the moment of the request, so only real requests
count, and the hold is one Redis write.

A turn further away than `EMAIL_MAX_WAIT_SECONDS` is not taken: the send fails as a
temporary refusal naming the wait, the activity gives its worker slot back, and
Temporal tries it again then (next_retry_delay). Waiting emails are thus pending
activities, visible in the Temporal UI with the provider's last answer.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from folksjobs.infra import rediskeys
from folksjobs.notify.mailer import Email, EmailSender, EmailSendError, SendReceipt

if TYPE_CHECKING:
    from redis.asyncio import Redis

# KEYS: next-turn, hold-until. ARGV: seconds between turns, longest wait taken.
# Returns {taken (0/1), wait in seconds as a string} (Lua numbers would be truncated).
_TAKE_TURN = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local nxt = tonumber(redis.call('GET', KEYS[1]) or '0')
local hold = tonumber(redis.call('GET', KEYS[2]) or '0')
local slot = math.max(now, nxt, hold)
local wait = slot - now
if wait > tonumber(ARGV[2]) then
  return {0, tostring(wait)}
end
local after = slot + tonumber(ARGV[1])
redis.call('SET', KEYS[1], string.format('%.6f', after),
  'PX', math.ceil((after - now) * 1000) + 60000)
return {1, tostring(wait)}
"""

# KEYS: hold-until. ARGV: seconds to hold (0: only read). Only ever moves the hold forward.
_HOLD = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local hold = tonumber(redis.call('GET', KEYS[1]) or '0')
local want = now + tonumber(ARGV[1])
if tonumber(ARGV[1]) > 0 and want > hold then
  redis.call('SET', KEYS[1], string.format('%.6f', want),
    'PX', math.ceil(tonumber(ARGV[1]) * 1000) + 60000)
end
return tostring(math.max(want, hold) - now)
"""


class Pace:
    """The cluster's turns (see the module docstring)."""

    def __init__(self, redis: Redis, rate_per_second: float, max_wait: float) -> None:
        self.redis = redis
        self.interval = 1.0 / rate_per_second
        self.max_wait = max_wait
        self._take = redis.register_script(_TAKE_TURN)
        self._hold = redis.register_script(_HOLD)

    async def take_turn(self) -> None:
        """Returns at this sender's turn; a turn too far away is a temporary refusal."""
        keys = [rediskeys.email_next_turn(), rediskeys.email_hold_until()]
        while True:
            taken, wait = await self._take(keys=keys, args=[self.interval, self.max_wait])
            seconds = float(wait)
            if not int(taken):
                raise EmailSendError(
                    f"email rate: the next free turn is in {seconds:.1f} s"
                    " (EMAIL_RATE_PER_SECOND, or the provider asked the cluster to wait)",
                    retry_after=seconds,
                )
            await asyncio.sleep(seconds)
            # A hold set while this sender slept (a 429 to another worker) wins over
            # the turn taken before it.
            if await self.hold(0) <= 0.001:
                return

    async def hold(self, seconds: float) -> float:
        """Holds every sender for `seconds` from now (0: changes nothing); returns the
        hold left."""
        left = await self._hold(keys=[rediskeys.email_hold_until()], args=[seconds])
        return float(left)


class PacedSender:
    """The provider's sender behind the cluster's turns: one turn a request (a batch of
    100 is one request, as the provider counts it)."""

    def __init__(self, inner: EmailSender, pace: Pace, outage_hold: float) -> None:
        self.inner = inner
        self.name = inner.name
        self.pace = pace
        self.outage_hold = outage_hold

    async def send(self, email: Email) -> SendReceipt:
        await self.pace.take_turn()
        try:
            return await self.inner.send(email)
        except EmailSendError as e:
            await self._refused(e)
            raise

    async def send_batch(self, emails: list[Email]) -> list[SendReceipt]:
        await self.pace.take_turn()
        try:
            return await self.inner.send_batch(emails)
        except EmailSendError as e:
            await self._refused(e)
            raise

    async def _refused(self, e: EmailSendError) -> None:
        if e.permanent:
            return
        await self.pace.hold(e.retry_after if e.retry_after is not None else self.outage_hold)
