"""process-export at scale on the embedded stack: time and the worker's peak memory.

    python bench/export_bench.py [--rows 10000 100000] [--state /tmp/export-bench]

Starts Temporal, PostgreSQL and Valkey (free ports, their own state dir), seeds one
workspace per size with generated contacts (5 custom-field keys spread across contacts,
a third of them tagged), then for each size: a fresh `python worker.py` process, the
real `python -m starter export --workspace W` (the progress bar), and the worker's peak
RSS (VmHWM from /proc, the kernel's own high-water mark). One worker process per size,
so the peaks can be compared: constant memory means the same peak for 10x the rows.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from folksjobs.devtools import seed  # noqa: E402
from folksjobs.devtools.devstack import EmbeddedPostgres, EmbeddedValkey, TemporalDevServer  # noqa: E402
from folksjobs.infra import db  # noqa: E402


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


async def seed_workspace(dsn: str, rows: int) -> str:
    owner = await db.create_owner_pool(dsn)
    try:
        uid = await seed.create_user(owner, f"bench-{uuid.uuid4().hex[:6]}@example.com", "Bench")
        wid = await seed.create_workspace(owner, uid, f"bench {rows}")
        await owner.execute(
            "INSERT INTO contacts (workspace_id, email, first_name, last_name, company, phone,"
            " custom_fields)"
            " SELECT $1, 'person' || i || '@example.com', 'First' || i, 'Last, ' || i,"
            "  CASE WHEN i % 10 = 0 THEN '=HYPERLINK(\"x\")' ELSE 'Company ' || (i % 500) END,"
            "  '+1415555' || lpad((i % 10000)::text, 4, '0'),"
            "  jsonb_strip_nulls(jsonb_build_object("
            "    'plan', CASE WHEN i % 3 = 0 THEN 'pro' END,"
            "    'seats', CASE WHEN i % 4 = 0 THEN i % 50 END,"
            "    'region', CASE WHEN i % 5 = 0 THEN 'EU' END,"
            "    'notes', CASE WHEN i % 7 = 0 THEN 'line one' || chr(10) || 'line \"two\"' END,"
            "    'score', i % 100))"
            " FROM generate_series(1, $2) AS i",
            uuid.UUID(wid), rows,
        )  # fmt: skip
        tag = uuid.uuid4()
        await owner.execute(
            "INSERT INTO tags (id, workspace_id, name) VALUES ($1, $2, 'vip')", tag, uuid.UUID(wid)
        )
        await owner.execute(
            "INSERT INTO contact_tags (workspace_id, contact_id, tag_id)"
            " SELECT workspace_id, id, $2 FROM contacts WHERE workspace_id = $1 AND id % 3 = 0",
            uuid.UUID(wid), tag,
        )  # fmt: skip
        await owner.execute("ANALYZE contacts; ANALYZE contact_tags")
        return wid
    finally:
        await owner.close()


async def export_record(dsn: str, workspace_id: str) -> dict[str, object]:
    owner = await db.create_owner_pool(dsn, max_size=1)
    try:
        rec = await owner.fetchrow(
            "SELECT row_count, file_bytes, duration_ms FROM exports WHERE workspace_id = $1",
            uuid.UUID(workspace_id),
        )
        assert rec is not None
        return dict(rec)
    finally:
        await owner.close()


def start_s3() -> dict[str, str]:
    """A moto S3 server in this process (not the worker's) and a bucket; the worker's env."""
    import boto3
    from moto.server import ThreadedMotoServer

    from folksjobs.devtools.devstack import free_port

    port = free_port()
    ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False).start()
    url = f"http://127.0.0.1:{port}"
    boto3.client("s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id="bench",
                 aws_secret_access_key="bench").create_bucket(Bucket="bench")  # fmt: skip
    return {"BLOB_URL": "s3://bench/folksjobs", "S3_ENDPOINT_URL": url,
            "S3_ACCESS_KEY_ID": "bench", "S3_SECRET_ACCESS_KEY": "bench"}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--state", type=Path, default=Path("/tmp/export-bench"))
    ap.add_argument("--s3", action="store_true", help="export to S3 (a local moto server)")
    args = ap.parse_args()
    state: Path = args.state
    pg = EmbeddedPostgres(state / "pg")
    vk = EmbeddedValkey(state / "valkey")
    temporal = TemporalDevServer(state / "temporal")
    pg.start()
    vk.start(persist=False)
    temporal.start()
    try:
        asyncio.run(db.migrate(pg.dsn))
        env = {
            **os.environ, "PYTHONPATH": str(ROOT), "DATABASE_URL": pg.dsn, "REDIS_URL": vk.url,
            "TEMPORAL_ADDRESS": temporal.address, "TEMPORAL_TASK_QUEUE": "bench",
            "BLOB_URL": str(state / "blobs"), "OUTBOX_DIR": str(state / "outbox"),
            "COLUMNS": "100",
        }  # fmt: skip
        if args.s3:
            env.update(start_s3())
        report = []
        for rows in args.rows:
            t = time.monotonic()
            wid = asyncio.run(seed_workspace(pg.dsn, rows))
            seeded = time.monotonic() - t
            worker = subprocess.Popen([sys.executable, "worker.py"], cwd=ROOT, env=env)
            try:
                time.sleep(3)  # imports and connect; the export waits on the queue anyway
                idle_mb = peak_rss_mb(worker.pid)
                t = time.monotonic()
                out = subprocess.run(
                    [sys.executable, "-m", "starter", "export", "--workspace", wid],
                    cwd=ROOT, env=env, capture_output=True, text=True, check=True,
                )  # fmt: skip
                elapsed = time.monotonic() - t
                peak_mb = peak_rss_mb(worker.pid)
            finally:
                worker.send_signal(signal.SIGTERM)
                worker.wait(timeout=60)
            print(out.stdout)
            rec = asyncio.run(export_record(pg.dsn, wid))
            assert rec["row_count"] == rows, rec
            workflow_s = int(rec["duration_ms"]) / 1000  # type: ignore[call-overload]
            report.append({
                "store": "s3" if args.s3 else "directory",
                "rows": rows, "seed_s": round(seeded, 1), "starter_wall_s": round(elapsed, 2),
                "export_record_s": workflow_s, "rows_per_s": round(rows / workflow_s),
                "file_mb": round(int(rec["file_bytes"]) / 1e6, 1),  # type: ignore[call-overload]
                "worker_idle_rss_mb": round(idle_mb, 1), "worker_peak_rss_mb": round(peak_mb, 1),
            })  # fmt: skip
            print(json.dumps(report[-1]), flush=True)
        print(json.dumps(report, indent=2))
    finally:
        temporal.stop()
        vk.stop()
        pg.stop()


if __name__ == "__main__":
    main()
