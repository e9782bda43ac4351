"""Where attachment bytes live: the local disk (one node) or an S3-compatible bucket (any
number of nodes), behind one small interface; the database keeps the metadata either way."""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Final, Protocol

from atiende.core.config import Settings

if TYPE_CHECKING:
    from types_aiobotocore_s3.client import S3Client
    from types_aiobotocore_s3.type_defs import PutObjectRequestTypeDef

# Keys are "<tenant uuid>/<attachment uuid>", made by the service; nothing else is accepted,
# so no key can climb out of the store's root.
_UUID: Final = r"[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12}"
_KEY: Final = re.compile(rf"^{_UUID}/{_UUID}$")


class BlobMissing(LookupError):
    """The metadata row exists but the store has no bytes for it."""


class AttachmentStore(Protocol):
    async def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` atomically (readers never see half a file)."""
        ...

    async def get(self, key: str) -> bytes:
        """The bytes under ``key``; ``BlobMissing`` when there are none."""
        ...

    async def delete(self, key: str) -> None:
        """Remove ``key``; no error when it is already gone."""
        ...


def check_key(key: str) -> str:
    if not _KEY.match(key):
        raise ValueError(f"not an attachment key: {key!r}")
    return key


class LocalDiskStore:
    """``<root>/<tenant id>/<attachment id>``, written to a temporary file then renamed."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path_of(self, key: str) -> Path:
        return self.root / check_key(key)

    def _put(self, key: str, data: bytes) -> None:
        path = self.path_of(key)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def _get(self, key: str) -> bytes:
        try:
            return self.path_of(key).read_bytes()
        except FileNotFoundError as error:
            raise BlobMissing(key) from error

    async def put(self, key: str, data: bytes) -> None:
        await asyncio.to_thread(self._put, key, data)

    async def get(self, key: str) -> bytes:
        return await asyncio.to_thread(self._get, key)

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self.path_of(key).unlink, missing_ok=True)


@dataclass(frozen=True)
class S3Config:
    """Where and how to reach the bucket; hashable, so equal settings share one store."""

    bucket: str
    prefix: str = "attachments/"
    region: str = "us-east-1"
    endpoint_url: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = field(default=None, repr=False)
    server_side_encryption: bool = True

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Config:
        if not settings.s3_bucket:
            raise ValueError("ATIENDE_ATTACHMENT_STORE=s3 needs ATIENDE_S3_BUCKET")
        encrypt = settings.s3_server_side_encryption
        return cls(
            bucket=settings.s3_bucket,
            prefix=settings.s3_prefix,
            region=settings.s3_region,
            endpoint_url=settings.s3_endpoint_url,
            access_key_id=settings.s3_access_key_id,
            secret_access_key=settings.s3_secret_access_key,
            # SSE-S3 is always available on AWS; other services may refuse the header.
            server_side_encryption=settings.s3_endpoint_url is None if encrypt is None else encrypt,
        )


@dataclass
class _OpenClient:
    loop: asyncio.AbstractEventLoop
    client: S3Client
    exit: AsyncExitStack


# Error codes S3 (and compatible services) give for an object that is not there.
_NOT_FOUND: Final = frozenset({"NoSuchKey", "NotFound", "404"})


class S3Store:
    """``<prefix><tenant id>/<attachment id>`` in one bucket. Objects are written whole by
    a single ``PutObject`` (readers never see part of one), carry no ACL (private to the
    bucket's owner; the app serves them, never the bucket) and, when configured, ask for
    SSE-S3 encryption. One client per store, opened on first use and kept for the event
    loop that opened it; ``close`` releases its connections."""

    def __init__(self, config: S3Config) -> None:
        from aiobotocore.config import AioConfig
        from aiobotocore.session import get_session

        self.config = config
        self._session = get_session()
        custom = config.endpoint_url is not None
        self._client_config = AioConfig(
            connect_timeout=5,
            read_timeout=30,
            retries={"max_attempts": 3, "mode": "standard"},
            # S3-compatible services rarely resolve "<bucket>.<host>" names, and some refuse
            # the newer optional checksums, so those get path-style requests and only the
            # checksums an operation requires.
            s3={"addressing_style": "path" if custom else "auto"},
            request_checksum_calculation="when_required" if custom else "when_supported",
            response_checksum_validation="when_required" if custom else "when_supported",
        )
        self._open: _OpenClient | None = None

    def object_key(self, key: str) -> str:
        return self.config.prefix + check_key(key)

    @property
    def connected(self) -> bool:
        """Whether a client is open (until ``close``)."""
        return self._open is not None

    async def _client(self) -> S3Client:
        loop = asyncio.get_running_loop()
        current = self._open
        if current is not None and current.loop is loop:
            return current.client
        # A client belongs to the loop that opened it; one opened by another (finished)
        # loop cannot be used or closed from here, so it is left behind.
        exit_stack = AsyncExitStack()
        client = await exit_stack.enter_async_context(
            self._session.create_client(
                "s3",
                region_name=self.config.region,
                endpoint_url=self.config.endpoint_url,
                aws_access_key_id=self.config.access_key_id,
                aws_secret_access_key=self.config.secret_access_key,
                config=self._client_config,
            )
        )
        current = self._open
        if current is not None and current.loop is loop:  # another task opened one meanwhile
            await exit_stack.aclose()
            return current.client
        self._open = _OpenClient(loop=loop, client=client, exit=exit_stack)
        return client

    async def put(self, key: str, data: bytes) -> None:
        request: PutObjectRequestTypeDef = {
            "Bucket": self.config.bucket,
            "Key": self.object_key(key),
            "Body": data,
            "ContentType": "application/octet-stream",
        }
        if self.config.server_side_encryption:
            request["ServerSideEncryption"] = "AES256"
        client = await self._client()
        await client.put_object(**request)

    async def get(self, key: str) -> bytes:
        from botocore.exceptions import ClientError

        object_key = self.object_key(key)
        client = await self._client()
        try:
            response = await client.get_object(Bucket=self.config.bucket, Key=object_key)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in _NOT_FOUND:
                raise BlobMissing(key) from error
            raise
        async with response["Body"] as body:
            return await body.read()

    async def delete(self, key: str) -> None:
        from botocore.exceptions import ClientError

        object_key = self.object_key(key)
        client = await self._client()
        try:
            await client.delete_object(Bucket=self.config.bucket, Key=object_key)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") not in _NOT_FOUND:
                raise

    async def close(self) -> None:
        """Release the client's connections; the next call opens a new client."""
        current, self._open = self._open, None
        if current is not None and current.loop is asyncio.get_running_loop():
            await current.exit.aclose()


@lru_cache(maxsize=8)
def _local(root: Path) -> LocalDiskStore:
    return LocalDiskStore(root)


_s3_stores: dict[S3Config, S3Store] = {}


def _s3(config: S3Config) -> S3Store:
    store = _s3_stores.get(config)
    if store is None:
        store = _s3_stores[config] = S3Store(config)
    return store


def attachment_store(settings: Settings) -> AttachmentStore:
    """The store this installation uses (``ATIENDE_ATTACHMENT_STORE``): the local disk under
    the data dir, or the S3 bucket. Equal settings get the same store, and so share one
    client."""
    if settings.attachment_store == "s3":
        return _s3(S3Config.from_settings(settings))
    return _local((settings.data_dir / "attachments").resolve())


async def close_attachment_store(settings: Settings) -> None:
    """Release the connections of the store ``settings`` select (nothing to do on disk);
    for the end of a process's lifespan. The store stays usable and reconnects on use."""
    if settings.attachment_store == "s3":
        store = _s3_stores.get(S3Config.from_settings(settings))
        if store is not None:
            await store.close()
