"""The event bus: in-process by default, Redis pub/sub when several nodes run.

Delivery on the bus is best-effort and live; durability comes from the event log, which a
subscriber reads to fill any gap (see ``atiende.realtime``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Protocol

from atiende.core.events import EventEnvelope

log = logging.getLogger(__name__)

Listener = Callable[[EventEnvelope], None]
CHANNEL = "atiende:events"


class Bus(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def publish(self, envelope: EventEnvelope) -> None: ...
    def subscribe(self, listener: Listener) -> Callable[[], None]: ...


class _LocalFanout:
    """Listeners of this process; each must be quick and never raise (they enqueue)."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        self._listeners.append(listener)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._listeners.remove(listener)

        return unsubscribe

    def deliver(self, envelope: EventEnvelope) -> None:
        for listener in list(self._listeners):
            try:
                listener(envelope)
            except Exception:
                log.exception("event listener failed for %s", envelope.type)


class InProcessBus(_LocalFanout):
    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def publish(self, envelope: EventEnvelope) -> None:
        self.deliver(envelope)


class RedisBus(_LocalFanout):
    """Publishes to one Redis channel; every node (this one included) delivers what it reads."""

    def __init__(self, url: str, channel: str = CHANNEL) -> None:
        super().__init__()
        import redis.asyncio as redis

        self._redis = redis.from_url(url)
        self._channel = channel
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="redis-bus")
        await asyncio.wait_for(self._ready.wait(), timeout=10)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._redis.aclose()

    async def publish(self, envelope: EventEnvelope) -> None:
        await self._redis.publish(self._channel, envelope.model_dump_json())

    async def _listen(self) -> None:
        backoff = 0.5
        while True:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(self._channel)
                    self._ready.set()
                    backoff = 0.5
                    async for message in pubsub.listen():
                        if message.get("type") != "message":
                            continue
                        try:
                            envelope = EventEnvelope.model_validate_json(message["data"])
                        except ValueError:
                            log.warning("dropping malformed bus message")
                            continue
                        self.deliver(envelope)
            except asyncio.CancelledError:
                raise
            except Exception:
                # Subscribers re-read the event log on their own reconnect; here we only
                # come back as soon as Redis does.
                log.exception("redis bus connection lost; retrying in %.1fs", backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10)


def create_bus(redis_url: str | None) -> Bus:
    return RedisBus(redis_url) if redis_url else InProcessBus()
