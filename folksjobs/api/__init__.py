"""The HTTP API (issue 16): uploads, imports, exports and events over HTTP, with keys.

`app` builds the aiohttp application, `routes` holds the handlers, `keys` the API keys,
`openapi` the OpenAPI document, and `static/` the console page served at `/`.
"""
