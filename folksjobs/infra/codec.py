"""Payload encryption: what Temporal stores in history is ciphertext, not contact data.

AES-256-GCM with a random 96-bit nonce per payload. The key id travels in the payload
metadata (`encryption-key-id`) and is bound to the ciphertext as associated data, so a
payload cannot be relabelled to another key. Rotation is by id: the first configured key
encrypts, every configured key decrypts, so old histories stay readable while new
payloads move to the new key. Payloads that are not encrypted (a workflow started from
the `temporal` CLI with raw JSON, history from before keys were configured) pass through
`decode` untouched.

The setting is `PAYLOAD_ENCRYPTION_KEYS="id:base64key,id:base64key"`;
`python -m starter codec-server --new-key ID` prints a fresh entry.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

ENCODING = b"binary/encrypted"
KEY_ID_META = "encryption-key-id"
NONCE_BYTES = 12
KEY_BYTES = 32
_KEY_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class CodecKeyError(ValueError):
    """The key setting is malformed, or a payload names a key that is not configured."""


def new_key_entry(key_id: str) -> str:
    """A fresh `id:base64key` entry for the setting."""
    if not _KEY_ID.match(key_id):
        raise CodecKeyError(f"key id {key_id!r} must be 1-64 of A-Z a-z 0-9 . _ -")
    return f"{key_id}:{base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()}"


def parse_keys(setting: str) -> list[tuple[str, bytes]]:
    """`id:base64key,id:base64key` -> [(id, key)], first first. Errors never echo a key."""
    keys: list[tuple[str, bytes]] = []
    for n, entry in enumerate((e.strip() for e in setting.split(",")), start=1):
        if not entry:
            continue
        key_id, sep, encoded = entry.partition(":")
        key_id = key_id.strip()
        if not sep or not _KEY_ID.match(key_id):
            raise CodecKeyError(
                f"payload encryption key #{n} must look like id:base64key "
                "(id of 1-64 characters A-Z a-z 0-9 . _ -)"
            )
        try:
            key = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise CodecKeyError(f"payload encryption key {key_id!r} is not valid base64") from None
        if len(key) != KEY_BYTES:
            raise CodecKeyError(
                f"payload encryption key {key_id!r} has {len(key)} bytes; AES-256 needs 32"
            )
        if any(k == key_id for k, _ in keys):
            raise CodecKeyError(f"payload encryption key id {key_id!r} appears twice")
        keys.append((key_id, key))
    if not keys:
        raise CodecKeyError("payload encryption keys are set but empty")
    return keys


class EncryptionCodec(PayloadCodec):
    def __init__(self, keys: Sequence[tuple[str, bytes]]) -> None:
        if not keys:
            raise CodecKeyError("at least one key is needed")
        self.key_id = keys[0][0]
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys}
        self._encryptor = self._ciphers[self.key_id]

    @classmethod
    def from_setting(cls, setting: str) -> EncryptionCodec:
        return cls(parse_keys(setting))

    @property
    def key_ids(self) -> list[str]:
        return list(self._ciphers)

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encrypt(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decrypt(p) for p in payloads]

    def encrypt(self, payload: Payload) -> Payload:
        nonce = os.urandom(NONCE_BYTES)
        aad = self.key_id.encode()
        sealed = self._encryptor.encrypt(nonce, payload.SerializeToString(), aad)
        return Payload(
            metadata={"encoding": ENCODING, KEY_ID_META: aad},
            data=nonce + sealed,
        )

    def decrypt(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload
        key_id = payload.metadata.get(KEY_ID_META, b"").decode(errors="replace")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise CodecKeyError(
                f"payload was encrypted with key id {key_id!r}, which is not among the "
                f"configured keys {self.key_ids}: add it to PAYLOAD_ENCRYPTION_KEYS"
            )
        data = payload.data
        try:
            plain = cipher.decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], key_id.encode())
        except InvalidTag:
            raise CodecKeyError(
                f"payload under key id {key_id!r} does not decrypt: wrong key or altered data"
            ) from None
        return Payload.FromString(plain)
