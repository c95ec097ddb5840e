"""Replay: every recorded history (tests/histories/) against today's workflow code.

A change to workflow code that would break a run already in flight (a command added,
removed or reordered without `workflow.patched`) fails here, not in production. The
histories are recorded by `python -m tests.histories.record`; see docs/deploys.md (the change
policy, and how a patch retires).
No server is needed: the Replayer runs the workflow code against the saved events.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from folksjobs.infra.temporal import CONVERTER
from folksjobs.models import WF_PROCESS_CSV, ImportResult, ProcessCsvInput
from folksjobs.notify.retry import EMAIL_DELIVERY
from worker import all_workflows
from workflows.import_chunks import CHUNKS_AS_SLOTS_FREE
from workflows.import_csv import IMPORT_EMAILS_APART

HISTORIES = Path(__file__).resolve().parent / "histories"
INDEX: dict[str, dict[str, str]] = json.loads((HISTORIES / "index.json").read_text())


FILES = sorted(p.name for p in HISTORIES.glob("*.json") if p.name != "index.json")


def load(file: str) -> WorkflowHistory:
    wid = INDEX.get(file, {}).get("workflow_id", file.removesuffix(".json"))
    return WorkflowHistory.from_json(wid, (HISTORIES / file).read_text())


def workflow_type(file: str) -> str:
    return load(file).events[0].workflow_execution_started_event_attributes.workflow_type.name


def test_corpus_covers_every_workflow() -> None:
    assert set(INDEX) <= set(FILES)
    assert len(FILES) >= 12
    registered = {getattr(wf, "__temporal_workflow_definition").name for wf in all_workflows()}
    assert {workflow_type(f) for f in FILES} == registered


async def test_every_history_replays() -> None:
    histories = {f: load(f) for f in FILES}
    file_of = {h.run_id: f for f, h in histories.items()}

    async def each() -> AsyncIterator[WorkflowHistory]:
        for h in histories.values():
            yield h

    replayer = Replayer(workflows=all_workflows(), data_converter=CONVERTER)
    results = await replayer.replay_workflows(each(), raise_on_replay_failure=False)
    failures = {file_of[run_id]: str(err) for run_id, err in results.replay_failures.items()}
    assert not failures, f"histories that no longer replay: {failures}"


@workflow.defn(name=WF_PROCESS_CSV, sandboxed=False)
class ProcessCsvRewritten:
    """A change that is not replay-safe: the first command is a timer, not an activity."""

    @workflow.run
    async def run(self, inp: ProcessCsvInput) -> ImportResult:
        await workflow.sleep(1)
        raise AssertionError("unreachable on replay")


async def test_a_change_that_is_not_replay_safe_is_caught() -> None:
    replayer = Replayer(workflows=[ProcessCsvRewritten], data_converter=CONVERTER)
    result = await replayer.replay_workflow(
        load("import-continue-as-new.run1.json"), raise_on_replay_failure=False
    )
    assert result.replay_failure is not None


def test_the_corpus_holds_both_sides_of_the_patch() -> None:
    """Runs recorded before `chunks-as-slots-free` (no marker: the old branch on replay) and
    after it (the marker: the new branch); docs/deploys.md says when the old one can go."""
    marked = {
        f: any(CHUNKS_AS_SLOTS_FREE.encode() in e.SerializeToString() for e in load(f).events)
        for f, entry in INDEX.items()
        if entry["workflow_type"] == WF_PROCESS_CSV
    }
    before = {f for f in marked if INDEX[f]["recorded_on"] == "e3589b5"}
    after = {f for f in marked if "@chunks-as-slots-free" in f}
    assert before and after
    assert not any(marked[f] for f in before) and all(marked[f] for f in after)


def test_the_corpus_holds_both_sides_of_the_email_delivery_patch() -> None:
    """Welcome, digest and export runs recorded before `email-delivery-window` (the spec's
    attempts for a provider's refusals) and after it (waits up to the delivery window); the
    import's runs after `import-emails-apart` (the emails their own step)."""

    def marked(f: str) -> bool:
        return any(EMAIL_DELIVERY.encode() in e.SerializeToString() for e in load(f).events)

    after = {f for f in FILES if "@email-delivery-window" in f}
    apart = {
        f
        for f in FILES
        if "@import-emails-apart" in f and INDEX[f]["workflow_type"] == WF_PROCESS_CSV
    }
    assert apart and all(
        any(IMPORT_EMAILS_APART.encode() in e.SerializeToString() for e in load(f).events)
        for f in apart
    )
    before = {"welcome-success.json", "digest-one-workspace-failing.run1.json",
              "export-success.json"}  # fmt: skip
    assert len(after) >= 6 and before <= set(FILES)
    assert all(marked(f) for f in after) and not any(marked(f) for f in before)


async def test_a_deprecated_patch_replays_the_runs_that_took_it() -> None:
    """docs/deploys.md, "Retiring a patch", step 1 for `small-file-in-one-activity`: the
    old branch is gone and the runs that recorded the marker still replay."""
    from workflows import import_csv_before

    source = inspect.getsource(import_csv_before)
    assert "deprecate_patch(SMALL_IN_ONE_ACTIVITY)" in source
    assert not re.search(r"(?<!deprecate_)patched\(SMALL_IN_ONE_ACTIVITY\)", source)
    marker = import_csv_before.SMALL_IN_ONE_ACTIVITY.encode()
    marked = [f for f in FILES if any(marker in e.SerializeToString() for e in load(f).events)]
    assert marked
    replayer = Replayer(workflows=all_workflows(), data_converter=CONVERTER)
    for f in marked:
        result = await replayer.replay_workflow(load(f), raise_on_replay_failure=False)
        assert result.replay_failure is None, f
