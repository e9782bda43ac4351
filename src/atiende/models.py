"""Every table, imported in one place so migrations and tests see the whole schema."""

from atiende.audit.models import AuditEntry
from atiende.core.db import Base
from atiende.core.events import EventRecord
from atiende.identity.models import ApiToken, LoginAttempt, User, WebSession
from atiende.jobs.models import Job
from atiende.tenancy.models import Tenant

__all__ = [
    "ApiToken",
    "AuditEntry",
    "Base",
    "EventRecord",
    "Job",
    "LoginAttempt",
    "Tenant",
    "User",
    "WebSession",
]
