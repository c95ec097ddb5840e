"""Connecting to Temporal: one place for the address, TLS, API key and data converter."""

from __future__ import annotations

import asyncio
import dataclasses

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes
from temporalio.runtime import Runtime

from folksjobs.infra import tracing
from folksjobs.settings import Settings


class TemporalUnreachable(RuntimeError):
    """No Temporal server answered at TEMPORAL_ADDRESS."""


def data_converter(settings: Settings) -> DataConverter:
    """pydantic JSON payloads; encrypted by the payload codec when keys are configured.

    With keys, failure messages and stack traces move into the failure's encoded
    attributes (encrypted like any payload): an error text such as "provider refused
    jane@example.com" is as personal as a payload, and history would otherwise keep it
    in plaintext.
    """
    if settings.payload_encryption_keys is None:
        return pydantic_data_converter
    from folksjobs.infra.codec import EncryptionCodec

    codec = EncryptionCodec.from_setting(settings.payload_encryption_keys.get_secret_value())
    return dataclasses.replace(
        pydantic_data_converter,
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
