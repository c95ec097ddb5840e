"""Commands: api (serve the HTTP API) and api-key create|list|revoke.

python -m starter api                       # on API_BIND (default 127.0.0.1:8080)
python -m starter api-key create --workspace W [--name N] [--service] [--json]
python -m starter api-key list [--workspace W] [--json]
python -m starter api-key revoke KEY_ID [--json]
"""

from __future__ import annotations

import argparse
import errno
from typing import TYPE_CHECKING

from starter.common import add_json_flag, emit, fail
from starter.errors import ENVIRONMENT

if TYPE_CHECKING:
    from folksjobs.api import keys
    from folksjobs.settings import Settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("api", help="serve the HTTP API and the console on API_BIND")
    p.set_defaults(run=api_cmd)
    k = sub.add_parser("api-key", help="create, list or revoke API keys")
    actions = k.add_subparsers(dest="key_action", required=True, metavar="create|list|revoke")
    c = actions.add_parser("create", help="a new key, printed once")
    c.add_argument("--workspace", required=True, metavar="W")
    c.add_argument("--name", default="", help="a label for the list")
    c.add_argument("--service", action="store_true",
                   help="a service key: may only send events (POST /v1/events)")  # fmt: skip
    add_json_flag(c)
    c.set_defaults(run=create_cmd)
    ls = actions.add_parser("list", help="keys (never their secrets)")
    ls.add_argument("--workspace", metavar="W")
    add_json_flag(ls)
    ls.set_defaults(run=list_cmd)
    r = actions.add_parser("revoke", help="refuse a key from its next request on")
    r.add_argument("key_id")
    add_json_flag(r)
    r.set_defaults(run=revoke_cmd)


async def api_cmd(args: argparse.Namespace, settings: Settings) -> None:
    from folksjobs.api.app import run_api
    from folksjobs.services import require_urls

    require_urls(settings)
    try:
        await run_api(settings)
    except OSError as e:
        if e.errno != errno.EADDRINUSE:
            raise
        fail(
            f"API_BIND {settings.api_bind}: the port is already in use (a running `starter "
            "dev` serves the API and console there too: use it, or stop what listens, or "
            "set API_BIND to another port, e.g. API_BIND=127.0.0.1:8090)",
            ENVIRONMENT,
        )


def _view(k: keys.ApiKey) -> dict[str, object]:
    return {
        "id": k.id,
        "workspace_id": k.workspace_id,
        "name": k.name,
        "kind": k.kind,
        "prefix": k.prefix,
        "created_at": k.created_at.isoformat(),
        "revoked_at": k.revoked_at.isoformat() if k.revoked_at else None,
    }


async def create_cmd(args: argparse.Namespace, settings: Settings) -> None:
    from folksjobs.api import keys
    from folksjobs.infra import db
    from folksjobs.services import require_urls

    dsn, _ = require_urls(settings)
    pool = await db.create_pool(dsn, max_size=1)
    try:
        key, secret = await keys.create(
            pool, args.workspace, args.name, "service" if args.service else "workspace"
        )
    except (keys.UnknownKey, ValueError) as e:
        fail(str(e))
        raise
    finally:
        await pool.close()
    emit(args, {**_view(key), "key": secret},
         f"{secret}\n  {key.kind} key {key.id} for workspace {key.workspace_id}; "
         "it is shown only this once")  # fmt: skip


async def list_cmd(args: argparse.Namespace, settings: Settings) -> None:
    from folksjobs.api import keys
    from folksjobs.infra import db
    from folksjobs.services import require_urls

    dsn, _ = require_urls(settings)
    owner = await db.create_owner_pool(dsn, max_size=1)
    try:
        found = await keys.list_keys(owner, args.workspace)
    finally:
        await owner.close()
    lines = [
        f"{k.id}  {k.prefix}…  {k.kind:<9}  {k.workspace_id}  "
        f"{'revoked' if k.revoked_at else 'active ':<7}  {k.name}"
        for k in found
    ]
    emit(args, {"keys": [_view(k) for k in found]}, "\n".join(lines) or "no keys")


async def revoke_cmd(args: argparse.Namespace, settings: Settings) -> None:
    from folksjobs.api import keys
    from folksjobs.infra import db
    from folksjobs.services import require_urls

    dsn, _ = require_urls(settings)
    owner = await db.create_owner_pool(dsn, max_size=1)
    try:
        key = await keys.revoke(owner, args.key_id)
    except keys.UnknownKey as e:
        fail(str(e))
        raise
    finally:
        await owner.close()
    emit(args, _view(key), f"revoked {key.id} ({key.prefix}…)")
