"""Command: codec-server — decrypt payloads for the Temporal UI and CLI (and make keys)."""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import TYPE_CHECKING

from starter.common import fail

if TYPE_CHECKING:
    from folksjobs.settings import Settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "codec-server",
        help="serve /encode and /decode for the Temporal UI (PAYLOAD_ENCRYPTION_KEYS)",
    )
    p.add_argument("--bind", help="host:port (default CODEC_SERVER_BIND)")
    p.add_argument(
        "--new-key", metavar="ID",
        help="print a fresh id:base64key entry for PAYLOAD_ENCRYPTION_KEYS and exit",
    )  # fmt: skip
    p.set_defaults(run=codec_server)


async def codec_server(args: argparse.Namespace, settings: Settings) -> None:
    from aiohttp import web

    from folksjobs.infra.codec import CodecKeyError, new_key_entry
    from folksjobs.infra.codec_server import app_from_settings, cors_origins, split_bind

    if args.new_key:
        try:
            print(new_key_entry(args.new_key))
        except CodecKeyError as e:
            fail(str(e))
        return
    if args.bind:
        settings = settings.model_copy(update={"codec_server_bind": args.bind})
    try:
        app = app_from_settings(settings)
        host, port = split_bind(settings.codec_server_bind)
    except (CodecKeyError, ValueError) as e:
        fail(str(e))
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    print(
        f"codec server on http://{host}:{port} (CORS: {', '.join(sorted(cors_origins(settings)))})"
    )
    print(f"  Temporal UI: Settings > Codec Server > http://{host}:{port}")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
