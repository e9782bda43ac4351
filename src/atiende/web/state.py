"""Process resources owned by the app's lifespan and shared by every request."""

from __future__ import annotations

from dataclasses import dataclass, field

from atiende.core.bus import Bus
from atiende.core.clock import Clock
from atiende.core.config import Settings
from atiende.core.db import Database
from atiende.jobs.registry import JobRegistry


@dataclass
class AppState:
    settings: Settings
    db: Database
    bus: Bus
    clock: Clock
    jobs: JobRegistry
    node_id: str
    started: bool = field(default=False)
