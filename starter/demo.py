"""Command: demo — the quick start's main job, end to end on the embedded stack."""

from __future__ import annotations

import argparse

from temporalio.common import WorkflowIDConflictPolicy

from folksjobs import db, seed
from folksjobs.models import WF_SEND_WELCOME, SendWelcomeInput, welcome_workflow_id
from folksjobs.settings import Settings
from starter.common import ui_link
from starter.stack import describe, dev_stack


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("demo", help="bring the stack up, seed a workspace and run the demo job")
    p.set_defaults(run=demo)


async def demo(args: argparse.Namespace, settings: Settings) -> None:
    async with dev_stack(settings) as (live, client):
        for name, value in describe(live):
            print(f"  {name:<14} {value}")
        assert live.database_url
        owner = await db.create_owner_pool(live.database_url)
        try:
            s = await seed.seed_demo(owner)
        finally:
            await owner.close()
        wid = welcome_workflow_id(s.user_id)
        handle = await client.start_workflow(
            WF_SEND_WELCOME,
            SendWelcomeInput(user_id=s.user_id),
            id=wid,
            task_queue=live.temporal_task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )
        result = await handle.result()
        print(f"welcome email sent ({result['backend']}): {ui_link(live, wid)}")
        print(f"outbox: {live.outbox_dir}")
