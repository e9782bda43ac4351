"""Translations: Babel ``.po`` catalogs compiled in memory at start-up (no build step), and
the request's language: the user's setting, else the language cookie, else the browser's
``Accept-Language``, else the tenant's locale, else Spanish."""

from __future__ import annotations

import io
from contextvars import ContextVar
from functools import cache
from pathlib import Path

from babel import Locale, UnknownLocaleError
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

LOCALES = ("es", "en")
DEFAULT_LOCALE = "es"
LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"

current_locale: ContextVar[str] = ContextVar("current_locale", default=DEFAULT_LOCALE)


@cache
def translations(locale: str) -> NullTranslations:
    path = LOCALE_DIR / locale / "LC_MESSAGES" / "messages.po"
    if not path.exists():
        return NullTranslations()
    with path.open("rb") as handle:
        catalog = read_po(handle, locale=locale)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return Translations(fp=buffer)


def gettext(message: str) -> str:
    return translations(current_locale.get()).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return translations(current_locale.get()).ngettext(singular, plural, n)


def normalise(value: str | None) -> str | None:
    if not value:
        return None
    code = value.replace("-", "_").split("_")[0].lower()
    return code if code in LOCALES else None


def from_accept_language(header: str | None) -> str | None:
    if not header:
        return None
    preferred: list[tuple[float, str]] = []
    for position, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        preferred.append((-quality + position * 1e-6, tag.strip()))
    for _, tag in sorted(preferred):
        try:
            code = normalise(str(Locale.parse(tag, sep="-"))) if tag != "*" else None
        except (ValueError, UnknownLocaleError):
            code = normalise(tag)
        if code:
            return code
    return None


def negotiate(
    *,
    user_locale: str | None,
    cookie: str | None,
    accept_language: str | None,
    tenant_locale: str | None = None,
    default: str = DEFAULT_LOCALE,
) -> str:
    return (
        normalise(user_locale)
        or normalise(cookie)
        or from_accept_language(accept_language)
        or normalise(tenant_locale)
        or default
    )
