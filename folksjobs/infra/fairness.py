"""Workspaces sharing one task queue: Temporal's Task Queue Priority and Fairness.

Every job of a workspace carries the workspace id as its fairness key, so the server
dispatches the queue's backlog round-robin between workspaces (weighted by
`fairness_weight`) instead of in arrival order: a workspace importing 10M rows holds its
weight's share of the slots, never all of them. Within that, the priority key orders
work: the short steps a person waits on (a small import, check and finalize, a welcome)
go before bulk chunk processing.

Activities inherit their workflow's Priority (each field left unset is inherited), so
the workflow start sets it once and only bulk steps override the key (`BULK`).

The server must have both switched on (`SERVER_DYNAMIC_CONFIG`): the dev stack and the
tests' server pass them as `--dynamic-config-value`, deploy/ in its dynamic config file.
Without them the server ignores the keys and dispatches in arrival order, as before.
"""

from __future__ import annotations

from enum import IntEnum

from temporalio.common import Priority

from folksjobs.settings import Settings

# Dynamic config of a self-hosted server (Temporal Cloud: the namespace's Fairness setting).
SERVER_DYNAMIC_CONFIG: dict[str, bool] = {
    "matching.useNewMatcher": True,  # priority keys, and the matcher fairness runs in
    "matching.enableFairness": True,
}


class Lane(IntEnum):
    """Priority keys: smaller runs sooner; the server's default (no key) is 3."""

    USER = 2  # a person waits on it: workflow tasks, small imports, checks, finalize
    BULK = 4  # chunk processing of a large import, the weekly digest's fan-out


def workspace_priority(settings: Settings, workspace_id: str, lane: Lane = Lane.USER) -> Priority:
    """The Priority of a workspace's job; its activities inherit it."""
    return Priority(
        priority_key=int(lane),
        fairness_key=workspace_id,
        fairness_weight=settings.fairness_weights.get(
            workspace_id, settings.fairness_default_weight
        ),
    )


# An activity's override: the key only, the fairness key and weight stay the workflow's.
BULK = Priority(priority_key=int(Lane.BULK))
