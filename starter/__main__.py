"""`python -m starter`: run the CLI, then leave without interpreter teardown.

The Temporal client's Rust threads can outlive the event loop and abort CPython's
finalisation ("Fatal Python error: PyGILState_Release ... Python runtime state:
finalizing", temporalio/sdk-python#300), turning a finished command into a SIGABRT.
By the time main() returns everything is done; only the output needs flushing.
"""

import os
import sys

from starter.cli import main

code = 0
try:
    main()
except SystemExit as e:
    if isinstance(e.code, str):
        print(e.code, file=sys.stderr)
    code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
sys.stdout.flush()
sys.stderr.flush()
os._exit(code)
