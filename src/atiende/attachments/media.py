"""Pure checks on uploaded files: media types, content sniffing and safe names.

A declared type is only a claim. For the types that have a reliable signature (images, PDF,
MP3, Ogg, MP4) the first bytes must carry it, so an executable renamed to ``photo.png`` is
refused; text must contain no NUL bytes; any other allowed type must at least not start like
a native executable.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Final
from urllib.parse import quote

DEFAULT_MAX_BYTES: Final = 10 * 1024 * 1024  # 10 MiB
DEFAULT_ALLOWED_TYPES: Final = frozenset(
    {
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "application/pdf",
        "text/plain",
        "audio/mpeg",
        "audio/ogg",
        "video/mp4",
    }
)
MAX_NAME_LENGTH: Final = 255
SNIFF_BYTES: Final = 8192

# Common non-canonical spellings browsers and phones send.
_ALIASES: Final = {
    "image/jpg": "image/jpeg",
    "image/pjpeg": "image/jpeg",
    "audio/mp3": "audio/mpeg",
    "application/x-pdf": "application/pdf",
}


def _mp3(head: bytes) -> bool:
    # An ID3 tag, or straight into an MPEG audio frame (11 sync bits set).
    return head.startswith(b"ID3") or (
        len(head) >= 2 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0
    )


_SIGNATURES: Final[dict[str, Callable[[bytes], bool]]] = {
    "image/png": lambda head: head.startswith(b"\x89PNG\r\n\x1a\n"),
    "image/jpeg": lambda head: head.startswith(b"\xff\xd8\xff"),
    "image/gif": lambda head: head[:6] in {b"GIF87a", b"GIF89a"},
    "image/webp": lambda head: head[:4] == b"RIFF" and head[8:12] == b"WEBP",
    "application/pdf": lambda head: head.startswith(b"%PDF-"),
    "audio/mpeg": _mp3,
    "audio/ogg": lambda head: head.startswith(b"OggS"),
    "video/mp4": lambda head: head[4:8] == b"ftyp",
}

# Windows PE, ELF, Mach-O (both byte orders, 32/64 bit, fat), Java class files.
_EXECUTABLE: Final = (
    b"MZ",
    b"\x7fELF",
    b"\xfe\xed\xfa\xce",
    b"\xfe\xed\xfa\xcf",
    b"\xce\xfa\xed\xfe",
    b"\xcf\xfa\xed\xfe",
    b"\xca\xfe\xba\xbe",
)


def normalise_media_type(declared: str | None) -> str:
    """``Image/PNG; charset=x`` → ``image/png``; unknown aliases are returned as given."""
    base = (declared or "").split(";", 1)[0].strip().lower()
    return _ALIASES.get(base, base)


def content_matches(media_type: str, data: bytes) -> bool:
    """Whether the bytes look like what the (normalised) media type claims."""
    head = data[:SNIFF_BYTES]
    check = _SIGNATURES.get(media_type)
    if check is not None:
        return check(head)
    if media_type.startswith("text/"):
        return b"\x00" not in head
    return not head.startswith(_EXECUTABLE)


def safe_name(filename: str | None) -> str:
    """The client's file name reduced to a display name: no directories, no control
    characters, at most 255 characters (the extension kept). Never used as a path."""
    name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip()
    if name in {"", ".", ".."}:
        return "attachment"
    if len(name) > MAX_NAME_LENGTH:
        stem, ext = os.path.splitext(name)
        ext = ext[:16]
        name = stem[: MAX_NAME_LENGTH - len(ext)] + ext
    return name


def content_disposition(name: str) -> str:
    """``attachment`` with an ASCII fallback name and the exact name in RFC 5987 form."""
    fallback = "".join(ch if 32 <= ord(ch) < 127 and ch not in '"\\;' else "_" for ch in name)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"
