"""Exit codes, and one line with the cause and the fix for every expected failure.

A person reads the line; `-v` adds the traceback for whoever debugs. The codes are
documented in the README ("Exit codes") and `python -m starter --help`:

| code | meaning                                                                      |
|------|------------------------------------------------------------------------------|
| 0    | done                                                                         |
| 1    | the job ran and failed or was cancelled; or an upload was left pending       |
| 2    | bad arguments or input: unknown workspace, tag, import or event; bad mapping |
| 3    | the environment: a server unreachable or not started, a busy port, a missing |
|      | or wrong setting (DATABASE_URL, PAYLOAD_ENCRYPTION_KEYS, ...)                |
| 4    | an unexpected error (a bug): rerun with -v and report the traceback          |
| 130  | interrupted (Ctrl-C)                                                         |

Heavy modules are imported here only once an error has happened, so `--help` stays fast.
"""

from __future__ import annotations

from folksjobs.errors import root_cause

OK = 0
JOB_FAILED = 1
USAGE = 2
ENVIRONMENT = 3
UNEXPECTED = 4
INTERRUPTED = 130

EPILOG = (
    "exit codes: 0 done; 1 the job failed or was cancelled, or an upload was left pending; "
    "2 bad arguments or input (unknown workspace, tag, import, event); 3 the environment "
    "(server unreachable or not started, busy port, missing or wrong setting); "
    "4 unexpected error (rerun with -v); 130 interrupted. -v prints tracebacks."
)

ENCRYPTED_NO_KEYS = (
    "the payloads are encrypted and PAYLOAD_ENCRYPTION_KEYS is not set here: "
    "export the worker's keys (id:base64key,...) and run the command again"
)


def explain(e: BaseException) -> tuple[int, str]:
    """(exit code, one line) for an exception that reached the CLI's top level."""
    from pydantic import ValidationError
    from temporalio.client import WorkflowFailureError
    from temporalio.service import RPCError

    from folksjobs.devtools.devstack import StackError
    from folksjobs.infra.codec import CodecKeyError
    from folksjobs.infra.temporal import TemporalConfigError, TemporalUnreachable
    from folksjobs.services import MissingServiceUrls

    if isinstance(e, StackError | TemporalUnreachable | TemporalConfigError | MissingServiceUrls):
        return ENVIRONMENT, str(e)
    if isinstance(e, CodecKeyError):
        return ENVIRONMENT, f"PAYLOAD_ENCRYPTION_KEYS: {e}"
    if isinstance(e, WorkflowFailureError):
        return JOB_FAILED, f"the workflow failed: {root_cause(e)}"
    if isinstance(e, ValidationError) and e.title == "Settings":
        problems = "; ".join(f"{'.'.join(map(str, x['loc'])).upper()}: {x['msg']}"
                             for x in e.errors())  # fmt: skip
        return ENVIRONMENT, f"invalid setting: {problems} (environment or .env)"
    text = str(e)
    if "binary/encrypted" in text:
        # The data converter met an encrypted payload without a codec to open it.
        return ENVIRONMENT, ENCRYPTED_NO_KEYS
    if isinstance(e, RPCError):
        return ENVIRONMENT, f"Temporal refused the call: {e.message}"
    if isinstance(e, ConnectionError | TimeoutError) or (
        isinstance(e, OSError) and e.errno is not None
    ):
        return ENVIRONMENT, (
            f"cannot connect: {text or type(e).__name__}; is the dev stack running "
            "(`python -m starter dev`) and are DATABASE_URL and REDIS_URL exported?"
        )
    return UNEXPECTED, f"unexpected {type(e).__name__}: {text} (rerun with -v for the traceback)"
