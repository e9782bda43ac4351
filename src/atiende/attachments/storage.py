"""Where attachment bytes live. A small interface so an object store (S3) can replace the
local disk without touching the service; the database keeps the metadata either way."""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Final, Protocol

from atiende.core.config import Settings

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


@lru_cache(maxsize=8)
def _local(root: Path) -> LocalDiskStore:
    return LocalDiskStore(root)


def attachment_store(settings: Settings) -> AttachmentStore:
    """The store this installation uses: today always the local disk under the data dir."""
    return _local((settings.data_dir / "attachments").resolve())
