"""The loop every event socket runs (staff hub and webchat visitors): forward queued events,
read what the client says, and on each heartbeat let the hub check the caller, catch up from
the event log and send the heartbeat. A client silent for three heartbeats is dropped."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from fastapi import WebSocket, WebSocketDisconnect

E = TypeVar("E")

# What a heartbeat callback returns: None to go on, or a close reason to end the socket.
BeatResult = str | None


async def pump(
    websocket: WebSocket,
    queue: asyncio.Queue[E],
    *,
    heartbeat: float,
    send: Callable[[E], Awaitable[None]],
    on_message: Callable[[str], None],
    on_beat: Callable[[], Awaitable[BeatResult]],
    policy_close_code: int = 1008,
) -> None:
    loop = asyncio.get_running_loop()
    last_heard = loop.time()
    next_beat = last_heard + heartbeat
    receiver: asyncio.Task[Any] = asyncio.create_task(websocket.receive_text())
    try:
        while True:
            getter = asyncio.create_task(queue.get())
            done, _ = await asyncio.wait(
                {getter, receiver},
                timeout=max(0.0, next_beat - loop.time()),
                return_when=asyncio.FIRST_COMPLETED,
            )
            if getter in done:
                await send(getter.result())
            else:
                getter.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await getter
            if receiver in done:
                on_message(receiver.result())  # raises WebSocketDisconnect when they left
                last_heard = loop.time()
                receiver = asyncio.create_task(websocket.receive_text())
            if loop.time() >= next_beat:
                if loop.time() - last_heard > 3 * heartbeat:
                    await websocket.close(code=1001, reason="heartbeat_timeout")
                    return
                reason = await on_beat()
                if reason is not None:
                    await websocket.close(code=policy_close_code, reason=reason)
                    return
                next_beat = loop.time() + heartbeat
    finally:
        receiver.cancel()
        with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
            await receiver
