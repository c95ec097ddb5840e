"""Connecting to Temporal: one place for the address, TLS, API key and data converter.

Where to connect and how comes from the SDK's standard client configuration
(`temporalio.envconfig`): a TOML profile (`TEMPORAL_CONFIG_FILE`, default
`~/.config/temporalio/temporal.toml`; `TEMPORAL_PROFILE`, default `default`) and the
`TEMPORAL_*` variables the Temporal CLI and every SDK read, among them mTLS
(`TEMPORAL_TLS_CLIENT_CERT_PATH`, `TEMPORAL_TLS_CLIENT_KEY_PATH`,
`TEMPORAL_TLS_SERVER_CA_CERT_PATH`, `TEMPORAL_TLS_SERVER_NAME`). The four Temporal fields
of Settings (address, namespace, TLS, API key) read the same variable names; one given
explicitly (a `.env` line, a test's argument) wins over the profile, and the profile wins
over Settings' defaults.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from pydantic import ValidationError
from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from temporalio.contrib.pydantic import (
    PydanticJSONPlainPayloadConverter,
    PydanticPayloadConverter,
)
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes
from temporalio.envconfig import ClientConfigProfile
from temporalio.exceptions import ApplicationError
from temporalio.runtime import Runtime

from folksjobs.errors import INVALID_PAYLOAD
from folksjobs.infra import tracing
from folksjobs.settings import Settings

_ERRORS_NAMED = 5


def invalid_payload(e: ValidationError, what: str) -> ApplicationError:
    """The fields and why, never the values: a value may be 2 MB or an email address."""
    errors = e.errors(include_url=False, include_input=False)
    problems = "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or what}: {err['msg']}"
        for err in errors[:_ERRORS_NAMED]
    )
    more = f" (and {len(errors) - _ERRORS_NAMED} more)" if len(errors) > _ERRORS_NAMED else ""
    return ApplicationError(
        f"invalid {what}: {problems}{more}", type=INVALID_PAYLOAD, non_retryable=True
    )


class _ValidatingJSONConverter(PydanticJSONPlainPayloadConverter):
    def from_payload(self, payload: Payload, type_hint: type | None = None) -> Any:
        try:
            return super().from_payload(payload, type_hint)
        except ValidationError as e:
            # A failure error, not a ValueError: the SDK then fails the workflow (or the
            # activity, at once) instead of failing its task, which would retry forever.
            raise invalid_payload(e, getattr(type_hint, "__name__", "payload")) from None


class ValidatingPayloadConverter(PydanticPayloadConverter):
    """pydantic JSON, where a payload that does not validate is a non-retryable failure."""

    def __init__(self) -> None:
        super().__init__()
        json = _ValidatingJSONConverter()
        self.converters = {
            k: json if isinstance(c, PydanticJSONPlainPayloadConverter) else c
            for k, c in self.converters.items()
        }


CONVERTER = dataclasses.replace(
    DataConverter.default, payload_converter_class=ValidatingPayloadConverter
)


class TemporalUnreachable(RuntimeError):
    """No Temporal server answered at TEMPORAL_ADDRESS."""


def data_converter(settings: Settings) -> DataConverter:
    """pydantic JSON payloads (ValidatingPayloadConverter); encrypted by the payload codec
    when keys are configured.

    With keys, failure messages and stack traces move into the failure's encoded
    attributes (encrypted like any payload): an error text such as "provider refused
    jane@example.com" is as personal as a payload, and history would otherwise keep it
    in plaintext.
    """
    if settings.payload_encryption_keys is None:
        return CONVERTER
    from folksjobs.infra.codec import EncryptionCodec

    codec = EncryptionCodec.from_setting(settings.payload_encryption_keys.get_secret_value())
    return dataclasses.replace(
        CONVERTER,
        payload_codec=codec,
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )


# The variables temporalio.envconfig reads beside Settings' own (deploy/README.md).
ENVCONFIG_VARIABLES = (
    "TEMPORAL_CONFIG_FILE", "TEMPORAL_PROFILE",
    "TEMPORAL_TLS_CLIENT_CERT_PATH", "TEMPORAL_TLS_CLIENT_KEY_PATH",
    "TEMPORAL_TLS_SERVER_CA_CERT_PATH", "TEMPORAL_TLS_SERVER_NAME",
    "TEMPORAL_TLS_CLIENT_CERT_DATA", "TEMPORAL_TLS_CLIENT_KEY_DATA",
    "TEMPORAL_TLS_SERVER_CA_CERT_DATA", "TEMPORAL_TLS_DISABLE_HOST_VERIFICATION",
)  # fmt: skip


class TemporalConfigError(ValueError):
    """The Temporal client configuration (TOML profile or TEMPORAL_* variables) is wrong."""


def connect_options(settings: Settings) -> dict[str, Any]:
    """Client.connect's target, namespace, TLS and API key (see the module's docstring)."""
    try:
        profile = ClientConfigProfile.load()
        options: dict[str, Any] = dict(profile.to_client_connect_config())
    except Exception as e:  # the bridge's ConfigError: a missing profile, bad TOML, no file
        raise TemporalConfigError(f"Temporal client configuration: {e}") from e
    explicit = settings.model_fields_set
    for field, key, value in (
        ("temporal_address", "target_host", settings.temporal_address),
        ("temporal_namespace", "namespace", settings.temporal_namespace),
    ):
        if field in explicit or key not in options:
            options[key] = value
    if settings.temporal_api_key is not None:
        options["api_key"] = settings.temporal_api_key.get_secret_value()
    if "tls" not in options:
        # An API key implies TLS (Temporal Cloud).
        options["tls"] = settings.temporal_tls or "api_key" in options
    elif "temporal_tls" in explicit and not settings.temporal_tls:
        options["tls"] = False
    return options


async def connect(
    settings: Settings, *, runtime: Runtime | None = None, attempts: int = 30
) -> Client:
    """Connect, waiting a little for a server that is still starting."""
    options = connect_options(settings)
    interceptors = tracing.interceptors(settings)
    last: Exception | None = None
    for _ in range(attempts):
        try:
            return await Client.connect(
                **options,
                data_converter=data_converter(settings),
                runtime=runtime,
                interceptors=interceptors,
            )
        except RuntimeError as e:  # the core SDK reports connection failures as RuntimeError
            last = e
            await asyncio.sleep(0.5)
    raise TemporalUnreachable(
        f"cannot reach Temporal at {options['target_host']} ({last}): start the dev stack "
        "with `python -m starter dev`, or set TEMPORAL_ADDRESS to a running server"
    )
