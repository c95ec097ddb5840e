"""The blob store: uploaded CSVs and finished exports.

Two real backends behind one interface: a local directory (default) and S3 through
aioboto3 (multipart upload, streaming download). Keys are built by the code from ids
(`imports/<workspace>/<import>.csv`); a key that would leave the store's prefix is refused.
"""

from __future__ import annotations

import asyncio
import glob
import os
import posixpath
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

from folksjobs.settings import Settings

READ_CHUNK = 1024 * 1024
_KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")


class BlobKeyError(ValueError):
    pass


class BlobNotFound(FileNotFoundError):
    pass


def check_key(key: str) -> str:
    norm = posixpath.normpath(key)
    if (
        not _KEY_RE.match(key)
        or norm != key
        or norm.startswith(("../", "/"))
        or "/../" in f"/{norm}/"
    ):
        raise BlobKeyError(
            f"refused blob key {key!r}: keys are built from ids and stay in the store"
        )
    return key


def import_key(workspace_id: str, import_id: str) -> str:
    return check_key(f"imports/{workspace_id}/{import_id}.csv")


def export_key(workspace_id: str, export_id: str) -> str:
    return check_key(f"exports/{workspace_id}/{export_id}.csv")


def workspace_prefixes(workspace_id: str) -> tuple[str, ...]:
    """Every folder a workspace's files are kept under (import_key, export_key): deleting
    the workspace deletes them whole."""
    return tuple(check_key(f"{kind}/{workspace_id}") for kind in ("imports", "exports"))


class BlobWriter(Protocol):
    async def write(self, data: bytes) -> None: ...
    async def commit(self) -> int: ...
    async def abort(self) -> None: ...


class BlobStore(Protocol):
    url: str

    async def open_writer(self, key: str) -> BlobWriter: ...
    def read(self, key: str, start: int = 0) -> AsyncIterator[bytes]: ...
    async def size(self, key: str) -> int | None: ...
    async def delete(self, key: str) -> None: ...
    async def location(self, key: str) -> str: ...
    def uri(self, key: str) -> str: ...
    async def discard_unfinished(self, key: str) -> int: ...
    async def delete_prefix(self, prefix: str) -> int: ...
    def local_path(self, key: str) -> Path | None: ...
    async def close(self) -> None: ...


# --- local directory ----------------------------------------------------------------


class _LocalWriter:
    def __init__(self, final: Path) -> None:
        self.final = final
        final.parent.mkdir(parents=True, exist_ok=True)
        # A unique temporary name: a second attempt of the same activity writing at the
        # same time never interleaves with the first; the rename publishes atomically.
        self.tmp = final.with_name(f".{final.name}.{os.getpid()}.{id(self)}.part")
        self.fh = open(self.tmp, "wb")  # noqa: SIM115
        self.bytes = 0

    async def write(self, data: bytes) -> None:
        self.fh.write(data)
        self.bytes += len(data)

    async def commit(self) -> int:
        self.fh.close()
        os.replace(self.tmp, self.final)
        return self.bytes

    async def abort(self) -> None:
        self.fh.close()
        self.tmp.unlink(missing_ok=True)


class LocalBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.url = str(self.root)

    def local_path(self, key: str) -> Path:
        path = (self.root / check_key(key)).resolve()
        if not path.is_relative_to(self.root):
            raise BlobKeyError(f"refused blob key {key!r}")
        return path

    async def open_writer(self, key: str) -> BlobWriter:
        return _LocalWriter(self.local_path(key))

    async def read(self, key: str, start: int = 0) -> AsyncIterator[bytes]:
        path = self.local_path(key)
        try:
            fh = open(path, "rb")  # noqa: SIM115, ASYNC230
        except FileNotFoundError as e:
            raise BlobNotFound(f"blob {key} does not exist") from e
        with fh:
            fh.seek(start)
            while data := await asyncio.to_thread(fh.read, READ_CHUNK):
                yield data

    async def size(self, key: str) -> int | None:
        path = self.local_path(key)
        return path.stat().st_size if path.exists() else None

    async def delete(self, key: str) -> None:
        self.local_path(key).unlink(missing_ok=True)

    async def location(self, key: str) -> str:
        return str(self.local_path(key))

    def uri(self, key: str) -> str:
        return str(self.local_path(key))

    async def discard_unfinished(self, key: str) -> int:
        """Deletes the temporary files of writers that never committed (a killed worker)."""
        final = self.local_path(key)
        stale = list(final.parent.glob(f".{glob.escape(final.name)}.*.part"))
        for p in stale:
            p.unlink(missing_ok=True)
        return len(stale)

    async def delete_prefix(self, prefix: str) -> int:
        """Deletes the folder `prefix` and every file in it (unfinished writes included);
        returns the files deleted. Missing: 0."""
        folder = self.local_path(prefix)

        def remove() -> int:
            if not folder.is_dir():
                return 0
            files = [p for p in folder.rglob("*") if not p.is_dir()]
            for p in files:
                p.unlink(missing_ok=True)
            for d in sorted((p for p in folder.rglob("*") if p.is_dir()), reverse=True):
                d.rmdir()
            folder.rmdir()
            return len(files)

        return await asyncio.to_thread(remove)

    async def close(self) -> None:
        return None


# --- S3 -----------------------------------------------------------------------------


class _S3Writer:
    def __init__(self, client: Any, bucket: str, key: str, part_bytes: int) -> None:
        self.client = client
        self.bucket = bucket
        self.key = key
        self.part_bytes = max(part_bytes, 5 * 1024 * 1024)
        self.buf = bytearray()
        self.parts: list[dict[str, Any]] = []
        self.upload_id: str | None = None
        self.bytes = 0

    async def write(self, data: bytes) -> None:
        self.buf += data
        self.bytes += len(data)
        if len(self.buf) >= self.part_bytes:
            await self._flush_part()

    async def _flush_part(self) -> None:
        if self.upload_id is None:
            resp = await self.client.create_multipart_upload(Bucket=self.bucket, Key=self.key)
            self.upload_id = resp["UploadId"]
        n = len(self.parts) + 1
        resp = await self.client.upload_part(
            Bucket=self.bucket,
            Key=self.key,
            UploadId=self.upload_id,
            PartNumber=n,
            Body=bytes(self.buf),
        )
        self.parts.append({"ETag": resp["ETag"], "PartNumber": n})
        self.buf.clear()

    async def commit(self) -> int:
        if self.upload_id is None:
            # Small object: one PUT, no multipart bookkeeping.
            await self.client.put_object(Bucket=self.bucket, Key=self.key, Body=bytes(self.buf))
            return self.bytes
        if self.buf:
            await self._flush_part()
        await self.client.complete_multipart_upload(
            Bucket=self.bucket,
            Key=self.key,
            UploadId=self.upload_id,
            MultipartUpload={"Parts": self.parts},
        )
        return self.bytes

    async def abort(self) -> None:
        if self.upload_id is not None:
            await self.client.abort_multipart_upload(
                Bucket=self.bucket, Key=self.key, UploadId=self.upload_id
            )
        self.buf.clear()


class S3BlobStore:
    def __init__(self, settings: Settings) -> None:
        import aioboto3

        parsed = urlparse(settings.blob_url)
        self.bucket = parsed.netloc
        self.prefix = parsed.path.strip("/")
        self.url = settings.blob_url
        self.settings = settings
        self._session = aioboto3.Session(
            aws_access_key_id=settings.s3_access_key_id,
            aws_secret_access_key=(
                settings.s3_secret_access_key.get_secret_value()
                if settings.s3_secret_access_key
                else None
            ),
            region_name=settings.s3_region,
        )
        self._client_cm: Any = None
        self._client: Any = None
        self._lock = asyncio.Lock()

    async def client(self) -> Any:
        async with self._lock:
            if self._client is None:
                self._client_cm = self._session.client(
                    "s3", endpoint_url=self.settings.s3_endpoint_url
                )
                self._client = await self._client_cm.__aenter__()
        return self._client

    def _full(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def local_path(self, key: str) -> Path | None:
        return None

    async def open_writer(self, key: str) -> BlobWriter:
        return _S3Writer(
            await self.client(), self.bucket, self._full(key), self.settings.s3_multipart_part_bytes
        )

    async def read(self, key: str, start: int = 0) -> AsyncIterator[bytes]:
        client = await self.client()
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": self._full(key)}
        if start:
            kwargs["Range"] = f"bytes={start}-"
        try:
            resp = await client.get_object(**kwargs)
        except client.exceptions.NoSuchKey as e:
            raise BlobNotFound(f"blob {key} does not exist") from e
        body = resp["Body"]
        try:
            async for data in body.iter_chunks(READ_CHUNK):
                yield data
        finally:
            body.close()

    async def size(self, key: str) -> int | None:
        from botocore.exceptions import ClientError

        client = await self.client()
        try:
            head = await client.head_object(Bucket=self.bucket, Key=self._full(key))
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return int(head["ContentLength"])

    async def delete(self, key: str) -> None:
        client = await self.client()
        await client.delete_object(Bucket=self.bucket, Key=self._full(key))

    async def presigned_url(self, key: str) -> str:
        client = await self.client()
        url: str = await client.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.bucket, "Key": self._full(key)},
            ExpiresIn=self.settings.s3_presign_seconds,
        )
        return url

    async def location(self, key: str) -> str:
        """For a person: the object and a download link that expires (S3_PRESIGN_SECONDS)."""
        return f"{self.uri(key)} ({await self.presigned_url(key)})"

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._full(key)}"

    async def discard_unfinished(self, key: str) -> int:
        """Aborts multipart uploads to `key` that never completed (a killed worker): their
        parts are stored, and billed, until aborted."""
        client = await self.client()
        full = self._full(key)
        resp = await client.list_multipart_uploads(Bucket=self.bucket, Prefix=full)
        stale = [u for u in resp.get("Uploads", []) if u["Key"] == full]
        for u in stale:
            await client.abort_multipart_upload(
                Bucket=self.bucket, Key=full, UploadId=u["UploadId"]
            )
        return len(stale)

    async def delete_prefix(self, prefix: str) -> int:
        """Deletes every object under `prefix/` (1,000 a request) and aborts the multipart
        uploads still open under it; returns the objects deleted."""
        client = await self.client()
        full = self._full(prefix) + "/"
        deleted = 0
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full)
        async for page in pages:
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                await client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True}
                )
                deleted += len(keys)
        uploads = await client.list_multipart_uploads(Bucket=self.bucket, Prefix=full)
        for u in uploads.get("Uploads", []):
            await client.abort_multipart_upload(
                Bucket=self.bucket, Key=u["Key"], UploadId=u["UploadId"]
            )
        return deleted

    async def close(self) -> None:
        if self._client_cm is not None:
            await self._client_cm.__aexit__(None, None, None)
            self._client_cm = self._client = None


def build_blob_store(settings: Settings) -> BlobStore:
    if settings.blob_url.startswith("s3://"):
        return S3BlobStore(settings)
    path = settings.blob_url.removeprefix("file://")
    return LocalBlobStore(Path(path))
