import os
import sys
import traceback

from starter.cli import main


def _run() -> int:
    try:
        main()
    except SystemExit as e:
        if e.code is None or isinstance(e.code, int):
            return e.code or 0
        print(e.code, file=sys.stderr)
        return 1
    except BaseException:
        traceback.print_exc()
        return 1
    return 0


code = _run()
sys.stdout.flush()
sys.stderr.flush()
# The Temporal client's Rust threads can crash CPython's finalization (segfault/abort in
# about 1 exit of 15: temporalio/sdk-python#300); every command has finished and flushed
# its output by now, so the process ends without finalizing.
os._exit(code)
