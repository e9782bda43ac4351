"""A local Telegram Bot API: the methods the adapter calls, answering the way Telegram does
(``{"ok": true, "result": ...}`` or ``{"ok": false, "error_code", "description",
"parameters"}`` with the HTTP status equal to ``error_code``), and recording every request.

The bodies below are the provider's documented wire formats (success answers for
``sendMessage`` and ``setWebhook``, the error answers for rate limits, blocked users, unknown
chats and migrated groups).
"""

from __future__ import annotations

import copy
import itertools
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.datastructures import UploadFile

from factories import LiveServer

BOT_USER: dict[str, Any] = {
    "id": 123456789,
    "is_bot": True,
    "first_name": "Support Bot",
    "username": "support_bot",
}

SEND_MESSAGE_RESPONSE: dict[str, Any] = {
    "ok": True,
    "result": {
        "message_id": 1369,
        "from": BOT_USER,
        "chat": {
            "id": 1111111,
            "first_name": "Test Firstname",
            "last_name": "Test Lastname",
            "username": "Testusername",
            "type": "private",
        },
        "date": 1441645800,
        "text": "Thanks! An agent will reply shortly.",
    },
}
SET_WEBHOOK_RESPONSE: dict[str, Any] = {
    "ok": True,
    "result": True,
    "description": "Webhook was set",
}

ERROR_429_RETRY_AFTER: dict[str, Any] = {
    "ok": False,
    "error_code": 429,
    "description": "Too Many Requests: retry after 5",
    "parameters": {"retry_after": 5},
}
ERROR_400_CHAT_NOT_FOUND: dict[str, Any] = {
    "ok": False,
    "error_code": 400,
    "description": "Bad Request: chat not found",
}
ERROR_403_BLOCKED: dict[str, Any] = {
    "ok": False,
    "error_code": 403,
    "description": "Forbidden: bot was blocked by the user",
}
ERROR_400_MIGRATED: dict[str, Any] = {
    "ok": False,
    "error_code": 400,
    "description": "Bad Request: group chat was upgraded to a supergroup chat",
    "parameters": {"migrate_to_chat_id": -1001234567890},
}
ERROR_500: dict[str, Any] = {
    "ok": False,
    "error_code": 500,
    "description": "Internal Server Error",
}
ERROR_401: dict[str, Any] = {"ok": False, "error_code": 401, "description": "Unauthorized"}
ERROR_404: dict[str, Any] = {"ok": False, "error_code": 404, "description": "Not Found"}


def _error(code: int, description: str) -> JSONResponse:
    return JSONResponse(
        {"ok": False, "error_code": code, "description": description}, status_code=code
    )


@dataclass
class Upload:
    filename: str | None
    content_type: str | None
    content: bytes


@dataclass
class Recorded:
    """One request as the server got it."""

    method: str  # the Bot API method, or "download"
    http_method: str
    path: str
    headers: dict[str, str]
    json: Any = None
    form: dict[str, str] = field(default_factory=dict)
    files: dict[str, Upload] = field(default_factory=dict)


@dataclass
class StoredFile:
    file_path: str
    content: bytes
    report_size: bool = True  # getFile includes file_size
    chunked: bool = False  # served without Content-Length


class FakeTelegram:
    def __init__(self, token: str) -> None:
        self.token = token
        self.base = ""
        self.requests: list[Recorded] = []
        self.files: dict[str, StoredFile] = {}
        self._scripted: dict[str, list[tuple[int, Any]]] = defaultdict(list)
        self._message_ids: Iterator[int] = itertools.count(2000)
        self.app = self._build()

    # --- set-up --------------------------------------------------------------------------

    def answer_next(self, method: str, status: int, body: Any) -> None:
        """The next call of ``method`` gets this answer instead of the normal one (a
        non-dict ``body`` is sent as plain text)."""
        self._scripted[method].append((status, body))

    def add_file(
        self,
        file_id: str,
        file_path: str,
        content: bytes,
        *,
        report_size: bool = True,
        chunked: bool = False,
    ) -> None:
        self.files[file_id] = StoredFile(file_path, content, report_size, chunked)

    def calls(self, method: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method]

    # --- the API -------------------------------------------------------------------------

    def _build(self) -> FastAPI:
        app = FastAPI()

        @app.post("/bot{token}/{method}")
        async def call(token: str, method: str, request: Request) -> Response:
            recorded = Recorded(
                method=method,
                http_method=request.method,
                path=request.url.path,
                headers=dict(request.headers),
            )
            content_type = request.headers.get("content-type", "")
            if content_type.startswith("application/json"):
                recorded.json = await request.json()
            elif content_type:
                form = await request.form()
                for name, value in form.multi_items():
                    if isinstance(value, UploadFile):
                        recorded.files[name] = Upload(
                            value.filename, value.content_type, await value.read()
                        )
                    else:
                        recorded.form[name] = value
            self.requests.append(recorded)
            if token != self.token:
                return JSONResponse(ERROR_401, status_code=401)
            if self._scripted[method]:
                status, body = self._scripted[method].pop(0)
                if isinstance(body, dict):
                    return JSONResponse(body, status_code=status)
                return Response(str(body), status_code=status, media_type="text/html")
            params: dict[str, Any] = (
                recorded.json if isinstance(recorded.json, dict) else dict(recorded.form)
            )
            handler = {
                "getMe": self._get_me,
                "setWebhook": self._set_webhook,
                "sendMessage": self._send_message,
                "sendPhoto": lambda p: self._send_file(p, recorded, "photo"),
                "sendDocument": lambda p: self._send_file(p, recorded, "document"),
                "answerCallbackQuery": self._answer_callback,
                "getFile": self._get_file,
            }.get(method)
            if handler is None:
                return _error(404, "Not Found: method not found")
            return handler(params)

        @app.get("/file/bot{token}/{file_path:path}")
        async def download(token: str, file_path: str, request: Request) -> Response:
            self.requests.append(
                Recorded("download", request.method, request.url.path, dict(request.headers))
            )
            stored = next((f for f in self.files.values() if f.file_path == file_path), None)
            if token != self.token or stored is None:
                return JSONResponse(ERROR_404, status_code=404)
            if self._scripted["download"]:
                status, body = self._scripted["download"].pop(0)
                return Response(str(body), status_code=status)
            if stored.chunked:

                async def chunks() -> AsyncIterator[bytes]:
                    for start in range(0, len(stored.content), 1024):
                        yield stored.content[start : start + 1024]

                return StreamingResponse(chunks(), media_type="application/octet-stream")
            return Response(stored.content, media_type="application/octet-stream")

        return app

    def _get_me(self, params: dict[str, Any]) -> Response:
        return JSONResponse(
            {
                "ok": True,
                "result": {
                    **BOT_USER,
                    "can_join_groups": True,
                    "can_read_all_group_messages": False,
                    "supports_inline_queries": False,
                },
            }
        )

    def _set_webhook(self, params: dict[str, Any]) -> Response:
        url = params.get("url")
        if not isinstance(url, str) or not url.startswith("https://"):
            return _error(
                400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook"
            )
        return JSONResponse(SET_WEBHOOK_RESPONSE)

    def _message(self, chat_id: Any) -> dict[str, Any]:
        message: dict[str, Any] = copy.deepcopy(SEND_MESSAGE_RESPONSE["result"])
        message["message_id"] = next(self._message_ids)
        message["chat"]["id"] = int(chat_id)
        message.pop("text")
        return message

    def _send_message(self, params: dict[str, Any]) -> Response:
        chat_id, text = params.get("chat_id"), params.get("text")
        if chat_id in (None, ""):
            return _error(400, "Bad Request: chat_id is empty")
        if not isinstance(text, str) or not text.strip():
            return _error(400, "Bad Request: message text is empty")
        if len(text.encode("utf-16-le")) // 2 > 4096:
            return _error(400, "Bad Request: message is too long")
        return JSONResponse({"ok": True, "result": {**self._message(chat_id), "text": text}})

    def _send_file(self, params: dict[str, Any], recorded: Recorded, part: str) -> Response:
        chat_id = params.get("chat_id")
        if chat_id in (None, ""):
            return _error(400, "Bad Request: chat_id is empty")
        upload = recorded.files.get(part)
        if upload is None:
            return _error(400, f"Bad Request: there is no {part} in the request")
        message = self._message(chat_id)
        size = len(upload.content)
        if part == "photo":
            message["photo"] = [
                {
                    "file_id": "AgACAgIAAxkBAAIBQ2Y1_sent",
                    "file_unique_id": "AQADsent",
                    "file_size": size,
                    "width": 640,
                    "height": 480,
                }
            ]
        else:
            message["document"] = {
                "file_name": upload.filename,
                "mime_type": upload.content_type,
                "file_id": "BQACAgIAAxkBAAIBRGY1_sent",
                "file_unique_id": "AgADsent",
                "file_size": size,
            }
        if "caption" in params:
            message["caption"] = params["caption"]
        return JSONResponse({"ok": True, "result": message})

    def _answer_callback(self, params: dict[str, Any]) -> Response:
        if not params.get("callback_query_id"):
            return _error(400, "Bad Request: QUERY_ID_INVALID")
        return JSONResponse({"ok": True, "result": True})

    def _get_file(self, params: dict[str, Any]) -> Response:
        file_id = params.get("file_id")
        stored = self.files.get(str(file_id))
        if stored is None:
            return _error(400, "Bad Request: invalid file_id")
        result: dict[str, Any] = {
            "file_id": file_id,
            "file_unique_id": f"unique-{file_id}",
            "file_path": stored.file_path,
        }
        if stored.report_size:
            result["file_size"] = len(stored.content)
        return JSONResponse({"ok": True, "result": result})


@asynccontextmanager
async def fake_telegram(token: str) -> AsyncIterator[FakeTelegram]:
    """The fake Bot API on 127.0.0.1, a free port; ``fake.base`` is its ``api_base``."""
    fake = FakeTelegram(token)
    async with LiveServer(fake.app) as server:
        fake.base = server.http
        yield fake
