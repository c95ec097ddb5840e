"""The error type names that cross Temporal, and how a failure is told to a person.

An activity raises `ApplicationError(msg, type=<one of these>)`; a workflow names them in
its retry policy's non-retryable types and in the branches that react to one (ChunkMissing
re-chunks, LedgerMismatch repairs); tests and the fault run match on them. Other services
and operators see them in the Temporal UI, so a name never changes once released.
"""

from __future__ import annotations

from typing import Final

# any workflow: an input that does not validate. The SDK's reserved type for "this
# payload can never be valid" (temporalio.converter.create_payload_validation_error):
# failing with it ends the run instead of retrying its task; the message names the fields.
INVALID_PAYLOAD: Final = "PayloadValidationError"

# process-csv
INVALID_IMPORT: Final = "InvalidImport"  # missing, not processing, no email column, bad blob
CHUNK_MISSING: Final = "ChunkMissing"  # a chunk left Redis before it was committed
LEDGER_MISMATCH: Final = "LedgerMismatch"  # the database lost commits it had acknowledged
CHUNKER_FAILED: Final = "ChunkerFailed"  # the chunker process died (retried)
CHUNKS_LOST: Final = "ChunksLost"  # ChunkMissing more often than MAX_RECHUNKS
WORKER_SHUTDOWN: Final = "WorkerShutdown"  # handed to another worker on SIGTERM (retried)
IMPORT_FAILED: Final = "ImportFailed"  # the workflow's own failure, after mark-failed
IMPORT_REFUSED: Final = "ImportRefused"  # claim-import: not this workspace's, or not startable

# process-export
INVALID_EXPORT: Final = "InvalidExport"

# weekly-digest
WORKSPACE_NOT_FOUND: Final = "WorkspaceNotFound"
OWNER_NOT_FOUND: Final = "OwnerNotFound"
INVALID_DIGEST_INPUT: Final = "InvalidDigestInput"

# delete-workspace, delete-user
DELETION_REFUSED: Final = "DeletionRefused"  # workspace/deleted by someone not its owner

# any job that emails someone
USER_NOT_FOUND: Final = "UserNotFound"
EMAIL_PERMANENT_FAILURE: Final = "EmailPermanentFailure"  # the provider refused: never retried
EMAIL_SEND_FAILED: Final = "EmailSendFailed"  # a temporary refusal: waits and is tried again
EMAIL_GIVEN_UP: Final = "EmailGivenUp"  # still refused when its delivery window closed


def failed_with(e: BaseException, kind: str) -> bool:
    """Whether `e` is, or directly wraps (an ActivityError's cause), an ApplicationError
    of type `kind`. Only one level: a timeout's or a child's own causes are not the step's
    failure. (Read by its `type` attribute, the one ApplicationError has, so the CLI can
    import this module without loading Temporal.)"""
    cause = e if getattr(e, "type", None) is not None else getattr(e, "cause", None)
    return getattr(cause, "type", None) == kind


def root_cause(e: BaseException) -> BaseException:
    """The innermost cause of a failure chain (WorkflowFailureError -> ActivityError ->
    ApplicationError ...): where the reason is; the outer ones only say "failed"."""
    seen: set[int] = set()
    while id(e) not in seen:
        seen.add(id(e))
        cause = getattr(e, "cause", None) or e.__cause__
        if cause is None:
            break
        e = cause
    return e


def root_message(e: BaseException) -> str:
    """The root cause's message, or its type's name when it has none."""
    root = root_cause(e)
    return str(root) or type(root).__name__
