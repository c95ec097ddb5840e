"""process-csv's side effects, one module per part of the run, in step order:

- `claim`: claim-import, the first step (and the two it replaced, for older runs);
- `chunked`: download-and-chunk, process-batch, find-missing-chunks (a large file);
- `small`: import-small (a file of one chunk);
- `rows`: a chunk's rows into contacts and the ledger, for both paths;
- `finish`: finalize and mark-failed.

Payloads carry ids, counts and the file's shape (ImportFile); rows travel through Redis
or stay in the worker, never in Temporal.
"""

from __future__ import annotations

from activities.imports.chunked import ChunkedSteps
from activities.imports.claim import ClaimSteps
from activities.imports.finish import FinishSteps
from activities.imports.small import SmallSteps


class ImportActivities(ClaimSteps, SmallSteps, ChunkedSteps, FinishSteps):
    ACTIVITIES = (
        ClaimSteps.claim_import,
        ClaimSteps.check_import,
        ClaimSteps.fetch_import,
        ChunkedSteps.download_and_chunk,
        ChunkedSteps.process_batch,
        SmallSteps.import_small,
        ChunkedSteps.find_missing_chunks,
        FinishSteps.finalize,
        FinishSteps.send_import_emails,
        FinishSteps.mark_failed,
    )
