"""Outbound e-mail: queued in the caller's unit of work, sent by a durable job."""
