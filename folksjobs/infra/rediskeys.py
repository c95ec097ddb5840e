"""Every Redis key the jobs use, named in one place."""

from __future__ import annotations


def chunk(import_id: str, index: int) -> str:
    return f"import:{import_id}:chunk:{index}"


def chunks_written(import_id: str, generation: int) -> str:
    """How many chunks download-and-chunk has written so far in this generation."""
    return f"import:{import_id}:written:{generation}"


def chunking_done(import_id: str, generation: int) -> str:
    return f"import:{import_id}:chunked:{generation}"


def seen_emails(import_id: str) -> str:
    # A hash (email digest -> first chunk index) rather than the spec's plain set: the
    # chunk index makes a re-run of download-and-chunk give every chunk the same answer.
    return f"import:{import_id}:seen-emails"


def import_pattern(import_id: str) -> str:
    return f"import:{import_id}:*"


def gravatar(email_hash: str) -> str:
    return f"gravatar:{email_hash}"


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
