from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict


class AttachmentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    content_type: str
    size: int
    sha256: str
    uploader_kind: str
    uploader_id: uuid.UUID | None
    created_at: datetime

    def reference(self) -> dict[str, object]:
        """What a message keeps about the file (``messages.attachments`` entries)."""
        return {
            "id": str(self.id),
            "name": self.name,
            "content_type": self.content_type,
            "size": self.size,
        }
