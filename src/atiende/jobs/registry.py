"""Which function runs a job of each kind."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from atiende.core.config import Settings


@dataclass(frozen=True, slots=True)
class JobContext:
    job_id: Any
    kind: str
    attempt: int
    settings: Settings


Handler = Callable[[AsyncSession, dict[str, Any], JobContext], Awaitable[None]]


class JobRegistry:
    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}

    def register(self, kind: str, handler: Handler) -> None:
        if kind in self._handlers:
            raise ValueError(f"a handler for {kind!r} is registered already")
        self._handlers[kind] = handler

    def handler(self, kind: str) -> Callable[[Handler], Handler]:
        def decorate(func: Handler) -> Handler:
            self.register(kind, func)
            return func

        return decorate

    def get(self, kind: str) -> Handler | None:
        return self._handlers.get(kind)

    def kinds(self) -> list[str]:
        return sorted(self._handlers)
