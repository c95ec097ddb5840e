"""The custom search attributes the workflows set, so runs are findable in the Temporal UI.

This is their one definition: the dev stack registers `REGISTRATION` at start
(devstack.TemporalDevServer), the job catalog and docs/contract.md name them from here, and
a production namespace needs `temporal operator search-attribute create` once per entry
(deploy/README.md; tests/test_deploy.py checks the compose file does exactly that).
"""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

WORKSPACE_ID = SearchAttributeKey.for_keyword("WorkspaceId")
IMPORT_ID = SearchAttributeKey.for_keyword("ImportId")
EXPORT_ID = SearchAttributeKey.for_keyword("ExportId")
JOB_STATUS = SearchAttributeKey.for_keyword("JobStatus")

ALL: tuple[SearchAttributeKey[str], ...] = (WORKSPACE_ID, IMPORT_ID, EXPORT_ID, JOB_STATUS)


def cli_type(key: SearchAttributeKey[str]) -> str:
    """The type as the `temporal` CLI spells it (`--type Keyword`, `Name=Keyword`)."""
    return "".join(w.title() for w in key.indexed_value_type.name.split("_"))


# name -> CLI type, for `temporal server start-dev --search-attribute name=type`.
REGISTRATION: dict[str, str] = {key.name: cli_type(key) for key in ALL}
