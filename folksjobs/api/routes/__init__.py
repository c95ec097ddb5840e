"""The routes, one module per resource: each takes its workspace from the key, never from
the URL or the body.

An id of another workspace answers 404 exactly like an id that does not exist: every
lookup goes through the tenant-scoped repositories, which cannot see other workspaces.
API keys are managed by the operator (`folksjobs.api.keys`, `starter keys`), not over HTTP.
"""

from __future__ import annotations

from aiohttp import web

from folksjobs.api.routes import events, exports, health, imports


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/healthz", health.healthz)
    router.add_get("/readyz", health.readyz)
    router.add_post("/v1/imports", imports.create_import)
    router.add_get("/v1/imports/{id}", imports.get_import)
    router.add_put("/v1/imports/{id}/mapping", imports.set_mapping)
    router.add_post("/v1/imports/{id}/confirm", imports.confirm_import)
    router.add_get("/v1/imports/{id}/events", imports.import_events)
    router.add_post("/v1/imports/{id}/cancel", imports.cancel_import)
    router.add_post("/v1/exports", exports.create_export)
    router.add_get("/v1/exports/{id}", exports.get_export)
    router.add_get("/v1/exports/{id}/download", exports.download_export)
    router.add_post("/v1/events", events.send_event)
