"""Uploaded files: metadata rows in ``attachments``, bytes in an ``AttachmentStore``."""
