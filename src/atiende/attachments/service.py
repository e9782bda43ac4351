"""Storing and serving uploaded files. The only writer of ``attachments``.

Used by the staff upload endpoint (``attachments.api``) and by channel edges such as the
webchat visitor upload, which pass their own limits. The row is written first and the bytes
second, so a refused upload writes nothing, and a file is never served without its row. (If
the unit of work then fails to commit, the bytes stay behind unreferenced; nothing can reach
them without a row.)
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Collection, Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from atiende.attachments import media
from atiende.attachments.models import Attachment
from atiende.attachments.schemas import AttachmentOut
from atiende.attachments.storage import AttachmentStore, BlobMissing
from atiende.core.db import now, require_tenant
from atiende.core.errors import AtiendeError, NotFound, ValidationFailed
from atiende.core.ids import new_id

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = media.DEFAULT_MAX_BYTES
DEFAULT_ALLOWED_TYPES = media.DEFAULT_ALLOWED_TYPES


class AttachmentTooLarge(AtiendeError):
    status_code = 413
    code = "attachment_too_large"
    default_message = "The file is larger than allowed."


class UnsupportedMediaType(AtiendeError):
    status_code = 415
    code = "unsupported_media_type"
    default_message = "This kind of file is not accepted."


def check_upload(
    data: bytes,
    content_type: str | None,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    allowed_types: Collection[str] = DEFAULT_ALLOWED_TYPES,
) -> str:
    """Refuse what may not be stored; returns the normalised media type."""
    if len(data) > max_bytes:
        raise AttachmentTooLarge(f"The file is larger than {max_bytes} bytes.", max_bytes=max_bytes)
    if not data:
        raise ValidationFailed("The file is empty.", code="attachment_empty", field="file")
    media_type = media.normalise_media_type(content_type)
    allowed = {media.normalise_media_type(t) for t in allowed_types}
    if media_type not in allowed:
        raise UnsupportedMediaType(
            f"Files of type {media_type or 'unknown'!r} are not accepted.",
            allowed_types=sorted(allowed),
        )
    if not media.content_matches(media_type, data):
        raise UnsupportedMediaType(
            f"The file's content is not {media_type}.", allowed_types=sorted(allowed)
        )
    return media_type


async def store(
    session: AsyncSession,
    data: bytes,
    filename: str | None,
    content_type: str | None,
    *,
    blobs: AttachmentStore,
    max_bytes: int = DEFAULT_MAX_BYTES,
    allowed_types: Collection[str] = DEFAULT_ALLOWED_TYPES,
    uploader_kind: str = "user",
    uploader_id: uuid.UUID | None = None,
) -> AttachmentOut:
    """Check and keep an uploaded file for the session's tenant.

    Raises ``AttachmentTooLarge`` (413), ``UnsupportedMediaType`` (415) or
    ``ValidationFailed`` (422, empty file); nothing is written then.
    """
    media_type = check_upload(data, content_type, max_bytes=max_bytes, allowed_types=allowed_types)
    tenant_id = require_tenant(session)
    attachment_id = new_id()
    attachment = Attachment(
        id=attachment_id,
        name=media.safe_name(filename),
        content_type=media_type,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        storage_key=f"{tenant_id}/{attachment_id}",
        uploader_kind=uploader_kind,
        uploader_id=uploader_id,
        created_at=now(session),
    )
    session.add(attachment)
    await session.flush()
    await blobs.put(attachment.storage_key, data)
    return AttachmentOut.model_validate(attachment)


async def get(session: AsyncSession, attachment_id: uuid.UUID) -> AttachmentOut:
    """The metadata of one of the session's tenant's attachments (404 otherwise)."""
    attachment = await session.get(Attachment, attachment_id)
    if attachment is None:
        raise NotFound("attachment")
    return AttachmentOut.model_validate(attachment)


async def get_many(
    session: AsyncSession, attachment_ids: Sequence[uuid.UUID]
) -> list[AttachmentOut]:
    """Several attachments in the order asked; any unknown id is a 422 on the field, for
    request bodies that refer to uploads (``attachment_ids``)."""
    wanted = list(dict.fromkeys(attachment_ids))
    if not wanted:
        return []
    found = {
        a.id: a for a in await session.scalars(select(Attachment).where(Attachment.id.in_(wanted)))
    }
    missing = [str(i) for i in wanted if i not in found]
    if missing:
        raise ValidationFailed(
            "Unknown attachment.",
            code="attachment_not_found",
            field="attachment_ids",
            missing=missing,
        )
    return [AttachmentOut.model_validate(found[i]) for i in wanted]


async def open(
    session: AsyncSession, attachment_id: uuid.UUID, *, blobs: AttachmentStore
) -> tuple[AttachmentOut, bytes]:
    """The metadata and bytes of an attachment of the session's tenant (404 otherwise)."""
    attachment = await session.get(Attachment, attachment_id)
    if attachment is None:
        raise NotFound("attachment")
    try:
        data = await blobs.get(attachment.storage_key)
    except BlobMissing:
        log.warning("attachment %s has no stored bytes", attachment.id)
        raise NotFound("attachment") from None
    return AttachmentOut.model_validate(attachment), data
