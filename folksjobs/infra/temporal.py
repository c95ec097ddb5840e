"""Connecting to Temporal: one place for the address, TLS, API key and data converter."""

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


async def connect(
    settings: Settings, *, runtime: Runtime | None = None, attempts: int = 30
) -> Client:
    """Connect, waiting a little for a server that is still starting."""
    api_key = settings.temporal_api_key.get_secret_value() if settings.temporal_api_key else None
    interceptors = tracing.interceptors(settings)
    last: Exception | None = None
    for _ in range(attempts):
        try:
            return await Client.connect(
                settings.temporal_address,
                namespace=settings.temporal_namespace,
                data_converter=data_converter(settings),
                tls=settings.temporal_tls or bool(api_key),
                api_key=api_key,
                runtime=runtime,
                interceptors=interceptors,
            )
        except RuntimeError as e:  # the core SDK reports connection failures as RuntimeError
            last = e
            await asyncio.sleep(0.5)
    raise TemporalUnreachable(
        f"cannot reach Temporal at {settings.temporal_address} ({last}): start the dev stack "
        "with `python -m starter dev`, or set TEMPORAL_ADDRESS to a running server"
    )
