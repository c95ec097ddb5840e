"""The HTTP upload against the CLI's, the API process's memory, and concurrent uploads.

    python bench/api_bench.py [--rows 1000000] [--runs 3] [--state /tmp/api-bench]

On its own embedded stack (free ports, fresh state), with one `python -m starter api`
process:
1. the generated 1M-row file uploaded by the CLI's code path (`upload_csv`, in this
   process) and over HTTP (a text/csv body, and a multipart form), alternately, `--runs`
   times each; the ratio is CLI seconds / HTTP seconds of the medians (target >= 0.7);
2. the API process's RSS when idle (after one small upload) and its peak (VmHWM, the
   kernel's high-water mark) over an upload of a file just under 200 MB (target: idle +
   50 MB at most);
3. 20 concurrent uploads of a 10 MB file (20 keys' worth of slots), every answer 201
   with the row count the CLI path finds for the same file.
One line per run is appended to bench/api_results.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.generate import generate  # noqa: E402
from bench.stack import start_stack  # noqa: E402
from folksjobs.api import keys  # noqa: E402
from folksjobs.devtools import seed  # noqa: E402
from folksjobs.devtools.devstack import free_port  # noqa: E402
from folksjobs.imports.uploads import upload_csv  # noqa: E402
from folksjobs.infra import db  # noqa: E402
from folksjobs.services import open_services  # noqa: E402
from folksjobs.settings import Settings  # noqa: E402

RESULTS = ROOT / "bench" / "api_results.md"
CONCURRENT = 20
UPLOAD_LIMIT = 200 * 1024 * 1024


def proc_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field}")


async def setup(settings: Settings) -> tuple[str, str, str]:
    assert settings.database_url
    owner = await db.create_owner_pool(settings.database_url, max_size=1)
    try:
        uid = await seed.create_user(owner, f"bench-{uuid.uuid4().hex[:6]}@example.com", "B")
        wid = await seed.create_workspace(owner, uid, "api bench")
    finally:
        await owner.close()
    async with open_services(settings, pool_size=1) as s:
        _, secret = await keys.create(s.pool, wid, "bench")
    return uid, wid, secret


async def cli_upload(settings: Settings, path: Path, wid: str, uid: str) -> tuple[float, int]:
    async with open_services(settings, pool_size=2) as s:
        t = time.perf_counter()
        with path.open("rb") as fh:
            up = await upload_csv(s.pool, s.blob, settings, fh, path.name, wid, uid)
        return time.perf_counter() - t, up.total_rows


async def http_upload(
    session: aiohttp.ClientSession, url: str, key: str, path: Path, *, multipart: bool
) -> tuple[float, int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {key}"}
    t = time.perf_counter()
    # aiohttp reads the file object in its own executor, off the event loop.
    with path.open("rb") as fh:
        if multipart:
            form = aiohttp.FormData()
            form.add_field("file", fh, filename=path.name, content_type="text/csv")
            resp_cm = session.post(f"{url}/v1/imports", data=form, headers=headers)
        else:
            headers["Content-Type"] = "text/csv"
            resp_cm = session.post(
                f"{url}/v1/imports", data=fh, headers=headers, params={"filename": path.name}
            )
        async with resp_cm as resp:
            body = await resp.json()
    return time.perf_counter() - t, resp.status, body


async def wait_healthy(url: str, proc: subprocess.Popen[bytes]) -> None:
    async with aiohttp.ClientSession() as s:
        for _ in range(300):
            if proc.poll() is not None:
                raise RuntimeError("the API process exited")
            try:
                async with s.get(f"{url}/healthz") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("the API did not come up")


async def bench(args: argparse.Namespace, settings: Settings, api_pid: int, url: str,
                files: dict[str, Path]) -> dict[str, Any]:  # fmt: skip
    uid, wid, key = await setup(settings)
    out: dict[str, Any] = {}
    timeout = aiohttp.ClientTimeout(total=None)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        # Warm the API (imports, pools), then its idle figure.
        _, status, _ = await http_upload(session, url, key, files["small"], multipart=False)
        assert status == 201
        idle_kb = proc_kb(api_pid, "VmRSS")
        secs, status, body = await http_upload(session, url, key, files["200mb"], multipart=False)
        assert status == 201, body
        out["rss_idle_mb"] = idle_kb / 1024
        out["rss_peak_200mb_mb"] = proc_kb(api_pid, "VmHWM") / 1024
        out["upload_200mb_s"] = secs
        out["upload_200mb_bytes"] = files["200mb"].stat().st_size

        cli, raw, multi = [], [], []
        for _ in range(args.runs):
            s_cli, rows_cli = await cli_upload(settings, files["big"], wid, uid)
            cli.append(s_cli)
            s_raw, status, body = await http_upload(session, url, key, files["big"],
                                                    multipart=False)  # fmt: skip
            assert status == 201 and body["total_rows"] == rows_cli, body
            raw.append(s_raw)
            s_multi, status, body = await http_upload(session, url, key, files["big"],
                                                      multipart=True)  # fmt: skip
            assert status == 201 and body["total_rows"] == rows_cli, body
            multi.append(s_multi)
        out.update(rows=rows_cli, cli_s=cli, http_raw_s=raw, http_multipart_s=multi)
        out["ratio_raw"] = statistics.median(cli) / statistics.median(raw)
        out["ratio_multipart"] = statistics.median(cli) / statistics.median(multi)

        _, rows_10 = await cli_upload(settings, files["10mb"], wid, uid)
        t = time.perf_counter()
        answers = await asyncio.gather(*[
            http_upload(session, url, key, files["10mb"], multipart=i % 2 == 1)
            for i in range(CONCURRENT)
        ])  # fmt: skip
        out["concurrent_s"] = time.perf_counter() - t
        out["concurrent_ok"] = sum(
            1 for _, status, body in answers if status == 201 and body["total_rows"] == rows_10
        )
        out["concurrent_rows_each"] = rows_10
        out["rss_peak_after_all_mb"] = proc_kb(api_pid, "VmHWM") / 1024
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--state", type=Path, default=Path("/tmp/api-bench"))
    args = ap.parse_args()
    files_dir = args.state.parent / (args.state.name + "-files")
    files = {
        "small": files_dir / "small.csv",
        "10mb": files_dir / "10mb.csv",
        "big": files_dir / f"contacts-{args.rows}.csv",
        "200mb": files_dir / "200mb.csv",
    }
    for name, rows in (("small", 1000), ("10mb", 150_000), ("big", args.rows),
                       ("200mb", 2_850_000)):  # fmt: skip
        if not files[name].exists():
            generate(rows, 42, files[name])
    assert files["200mb"].stat().st_size <= UPLOAD_LIMIT
    stack = start_stack(args.state)
    port = free_port()
    env = {
        **os.environ, "PYTHONPATH": str(ROOT), "DATABASE_URL": stack.dsn,
        "REDIS_URL": stack.valkey.url, "TEMPORAL_ADDRESS": stack.temporal.address,
        "BLOB_URL": str(args.state / "blobs"), "API_BIND": f"127.0.0.1:{port}",
        "API_UPLOADS_PER_KEY": str(CONCURRENT), "API_READ_TIMEOUT_SECONDS": "600",
    }  # fmt: skip
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=stack.dsn,
        redis_url=stack.valkey.url,
        temporal_address=stack.temporal.address,
        blob_url=str(args.state / "blobs"),
    )
    api = subprocess.Popen([sys.executable, "-m", "starter", "api"], cwd=ROOT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        asyncio.run(wait_healthy(url, api))
        out = asyncio.run(bench(args, settings, api.pid, url, files))
    finally:
        api.terminate()
        api.wait(30)
        stack.stop()
    line = (
        f"- {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, "
        f"{os.cpu_count()} CPUs: {out['rows']:,}-row file "
        f"({files['big'].stat().st_size / 2**20:.0f} MiB): CLI "
        f"{statistics.median(out['cli_s']):.2f} s, HTTP text/csv "
        f"{statistics.median(out['http_raw_s']):.2f} s (ratio {out['ratio_raw']:.2f}), "
        f"multipart {statistics.median(out['http_multipart_s']):.2f} s "
        f"(ratio {out['ratio_multipart']:.2f}), medians of {args.runs}; "
        f"API RSS idle {out['rss_idle_mb']:.0f} MB, peak over a "
        f"{out['upload_200mb_bytes'] / 2**20:.0f} MiB upload {out['rss_peak_200mb_mb']:.0f} MB "
        f"(+{out['rss_peak_200mb_mb'] - out['rss_idle_mb']:.0f} MB; "
        f"{out['upload_200mb_s']:.1f} s); {CONCURRENT} concurrent "
        f"{files['10mb'].stat().st_size / 2**20:.0f} MiB uploads: {out['concurrent_ok']}/"
        f"{CONCURRENT} correct in {out['concurrent_s']:.1f} s "
        f"(API peak RSS after them {out['rss_peak_after_all_mb']:.0f} MB)"
    )
    print(line)
    if not RESULTS.exists():
        RESULTS.write_text(
            "# HTTP API benchmark (bench/api_bench.py)\n\n"
            "Targets: HTTP upload >= 0.7x the CLI's speed (ratio = CLI s / HTTP s); the API's\n"
            "peak RSS over a 200 MB upload at most idle + 50 MB; 20 concurrent 10 MB uploads\n"
            "all correct.\n\n"
        )
    with RESULTS.open("a") as f:
        f.write(line + "\n")


if __name__ == "__main__":
    main()
