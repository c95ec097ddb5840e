"""The custom search attributes the workflows set, so runs are findable in the Temporal UI.

The dev stack registers them (devstack.SEARCH_ATTRIBUTES); a production namespace needs
`temporal operator search-attribute create` once (deploy/README.md).
"""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

WORKSPACE_ID = SearchAttributeKey.for_keyword("WorkspaceId")
IMPORT_ID = SearchAttributeKey.for_keyword("ImportId")
EXPORT_ID = SearchAttributeKey.for_keyword("ExportId")
JOB_STATUS = SearchAttributeKey.for_keyword("JobStatus")
