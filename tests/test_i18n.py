"""Language choice and the translation catalogs."""

from __future__ import annotations

import pytest

from atiende.core import i18n


@pytest.mark.parametrize(
    ("user", "cookie", "header", "tenant", "expected"),
    [
        ("en", "es", "es-MX", "es", "en"),  # the user's setting wins
        (None, "en", "es-MX,es;q=0.9", "es", "en"),  # then the cookie
        (None, None, "fr-FR,en-US;q=0.8,es;q=0.5", "es", "en"),  # then the browser, by quality
        (None, None, "es-MX;q=0.4,en;q=0.9", "es", "en"),
        (None, None, "de", "en", "en"),  # then the tenant
        (None, None, None, None, "es"),  # Spanish by default
        ("xx", "yy", "zz", None, "es"),  # unknown values are ignored
    ],
)
def test_language_negotiation_order(
    user: str | None, cookie: str | None, header: str | None, tenant: str | None, expected: str
) -> None:
    assert (
        i18n.negotiate(
            user_locale=user, cookie=cookie, accept_language=header, tenant_locale=tenant
        )
        == expected
    )


def test_spanish_catalog_translates_the_interface() -> None:
    token = i18n.current_locale.set("es")
    try:
        assert i18n.gettext("Sign in") == "Iniciar sesión"
        assert i18n.gettext("Users") == "Usuarios"
    finally:
        i18n.current_locale.reset(token)


def test_english_is_the_source_language() -> None:
    token = i18n.current_locale.set("en")
    try:
        assert i18n.gettext("Sign in") == "Sign in"
    finally:
        i18n.current_locale.reset(token)
