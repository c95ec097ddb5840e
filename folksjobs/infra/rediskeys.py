"""Every Redis key the jobs use, named in one place."""

from __future__ import annotations


def chunk(import_id: str, index: int) -> str:
    return f"import:{import_id}:chunk:{index}"


def chunks_written(import_id: str, generation: int) -> str:
    """How many chunks download-and-chunk has written so far in this generation."""
    return f"import:{import_id}:written:{generation}"


def chunking_done(import_id: str, generation: int) -> str:
    return f"import:{import_id}:chunked:{generation}"


def seen_bucket_prefix(import_id: str) -> str:
    """The sets of the import's claimed emails, one per bucket (folksjobs/imports/dedup.py):
    this prefix and the bucket's number."""
    return f"import:{import_id}:seen:"


def dedup_claims(import_id: str) -> str:
    """A hash: each chunk's claim result, and the start marker of the import's dedup state."""
    return f"import:{import_id}:claims"


def seen_emails(import_id: str) -> str:
    """The releases before: one hash, email digest -> first chunk index. An import that
    started with it keeps it to its end."""
    return f"import:{import_id}:seen-emails"


def import_pattern(import_id: str) -> str:
    return f"import:{import_id}:*"


def gravatar(email_hash: str) -> str:
    """The cached answer: the avatar URL, or "" for none."""
    return f"gravatar:{email_hash}"


def gravatar_asking(email_hash: str) -> str:
    """Held (with a TTL) while one job asks Gravatar about this address."""
    return f"gravatar-asking:{email_hash}"


def gravatar_paused(service: str) -> str:
    """Present while no worker may ask this Gravatar (429 Retry-After, or the breaker);
    `service` names its base URL (a digest), as a pause belongs to the service asked."""
    return f"gravatar-paused:{service}"


def gravatar_failures(service: str) -> str:
    """Failed lookups of this Gravatar in a row, across workers (the breaker's count)."""
    return f"gravatar-failures:{service}"


def stats_pattern(workspace_id: str) -> str:
    return f"stats:{workspace_id}:*"


def api_uploads(key_id: str) -> str:
    """A sorted set: the uploads in flight with one API key, scored by their start time."""
    return f"api:uploads:{key_id}"


def email_next_turn() -> str:
    """The instant the next email request may go out (folksjobs/notify/pace.py)."""
    return "email:next-turn"


def email_hold_until() -> str:
    """No email request before this instant: the provider's Retry-After, or an outage."""
    return "email:hold-until"
