"""The benchmark's own servers: embedded PostgreSQL, Valkey and a Temporal dev server.

Fresh state under the work directory for every run, so no earlier data skews a case.
"""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import dataclass
from pathlib import Path

from bench.ceiling import Psql, psql_binary
from folksjobs.devtools.devstack import EmbeddedPostgres, EmbeddedValkey, TemporalDevServer
from folksjobs.infra import db


@dataclass
class BenchStack:
    root: Path
    postgres: EmbeddedPostgres
    valkey: EmbeddedValkey
    temporal: TemporalDevServer

    @property
    def dsn(self) -> str:
        return self.postgres.dsn

    @property
    def psql(self) -> Psql:
        return Psql(psql_binary(), self.dsn)

    @property
    def postmaster_pid(self) -> int:
        return int((self.postgres.data_dir / "postmaster.pid").read_text().split()[0])

    @property
    def temporal_pid(self) -> int:
        assert self.temporal.proc is not None
        return self.temporal.proc.pid

    def stop(self) -> None:
        self.temporal.stop()
        self.valkey.stop()
        self.postgres.stop()


def start_stack(
    root: Path,
    *,
    temporal: bool = True,
    temporal_args: list[str] | None = None,
    fairness: bool = True,
) -> BenchStack:
    """`fairness` False: a Temporal server without Priority and Fairness, to compare."""
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    pg = EmbeddedPostgres(root / "postgres")
    vk = EmbeddedValkey(root / "valkey")
    tp = TemporalDevServer(root / "temporal", extra_args=temporal_args or [], fairness=fairness)
    stack = BenchStack(root, pg, vk, tp)
    try:
        pg.start()
        vk.start(persist=False)
        if temporal:
            tp.start()
        asyncio.run(db.migrate(pg.dsn))
    except BaseException:
        stack.stop()
        raise
    return stack
