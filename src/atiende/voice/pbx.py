"""The Asterisk configuration a PBX needs to work with Atiende (pure: text in, text out).

``render`` writes four files:

- ``ari.conf``: the ARI user Atiende logs in as;
- ``http.conf``: Asterisk's HTTP server, where ARI (REST and the events WebSocket) lives,
  bound to the address and port of the PBX's ARI URL;
- ``pjsip.conf``: one PJSIP endpoint (with its auth and AOR) per extension of the tenant,
  for the agents' phones;
- ``extensions.conf``: for each inbound DID, a dialplan entry that hands the call to the
  Stasis application with the tenant and the DID as arguments,
  ``Stasis(<app>,<tenant>,<did>)``, and internal dialling between the extensions.

Every value written into a file is checked first: Asterisk's config syntax gives ``;``,
``[``, ``]``, ``,`` and line breaks a meaning, so a value containing them is refused rather
than escaped.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from atiende.core.errors import ValidationFailed

FILE_NAMES: Final = ("ari.conf", "http.conf", "pjsip.conf", "extensions.conf")
INBOUND_CONTEXT: Final = "atiende-inbound"
AGENTS_CONTEXT: Final = "atiende-agents"
TRANSPORT: Final = "atiende-transport-udp"
DEFAULT_SIP_BIND: Final = "0.0.0.0:5060"  # phones reach the PBX from the LAN
PLAIN_HTTP_PORT: Final = 8088
RING_SECONDS: Final = 20

_DID: Final = re.compile(r"^\+?[0-9]{2,20}$")
_NAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_EXTENSION: Final = re.compile(r"^[0-9]{2,20}$")
# Printable, no spaces, none of ; [ ] , " \ (comment, section, argument, quote and escape
# syntax).
_SECRET: Final = re.compile(r"^[!#-+\--:<-Z^-~]{1,128}$")
_SIP_BIND: Final = re.compile(r"^[0-9A-Fa-f.:\[\]]+:[0-9]{1,5}$")


class PbxConfigInvalid(ValidationFailed):
    code = "pbx_config_invalid"
    default_message = "The PBX configuration cannot be written with these values."


def placeholder(what: str) -> str:
    """A stand-in for a secret that is not printed (``<ari-password>``)."""
    return f"<{what}>"


@dataclass(frozen=True, slots=True)
class PhoneSecret:
    """An extension and the SIP password its phone registers with."""

    number: str
    secret: str


@dataclass(frozen=True, slots=True)
class PbxSetup:
    tenant_slug: str
    pbx_name: str
    ari_url: str  # e.g. http://10.0.0.5:8088/ari
    ari_username: str
    ari_password: str
    app_name: str = "atiende"
    dids: tuple[str, ...] = ()
    phones: tuple[PhoneSecret, ...] = ()
    sip_bind: str = DEFAULT_SIP_BIND


@dataclass(frozen=True, slots=True)
class AriAddress:
    """Where Asterisk's HTTP server must listen for the ARI URL to work."""

    tls: bool
    bind_address: str  # an IP address; 0.0.0.0 when the URL names a host
    port: int


def normalise_did(value: str) -> str:
    """A DID as the dialplan matches it: digits, optionally after a ``+``."""
    did = value.strip().replace(" ", "").replace("-", "")
    if not _DID.match(did):
        raise PbxConfigInvalid(
            f"{value!r} is not a DID: use 2 to 20 digits, optionally after a +.",
            code="did_invalid",
            field="did",
        )
    return did


def normalise_dids(values: Iterable[str]) -> tuple[str, ...]:
    dids: list[str] = []
    for value in values:
        did = normalise_did(value)
        if did in dids:
            raise PbxConfigInvalid(f"DID {did} is given twice.", code="did_duplicate", field="did")
        dids.append(did)
    return tuple(dids)


def ari_address(ari_url: str) -> AriAddress:
    """Parse an ARI base URL (``http[s]://host[:port]/ari``)."""
    parts = urlsplit(ari_url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise PbxConfigInvalid(
            f"{ari_url!r} is not an http(s) URL.", code="ari_url_invalid", field="ari_url"
        )
    if parts.path.rstrip("/") != "/ari" or parts.query or parts.fragment or parts.username:
        raise PbxConfigInvalid(
            f"{ari_url!r}: the ARI URL is the server's address followed by /ari, "
            "e.g. http://10.0.0.5:8088/ari.",
            code="ari_url_invalid",
            field="ari_url",
        )
    try:
        port = parts.port
    except ValueError as error:
        raise PbxConfigInvalid(
            f"{ari_url!r} has an invalid port.", code="ari_url_invalid", field="ari_url"
        ) from error
    tls = parts.scheme == "https"
    try:
        bind = str(ipaddress.ip_address(parts.hostname))
    except ValueError:
        bind = "0.0.0.0"  # noqa: S104 - a host name: listen on every address
    return AriAddress(tls=tls, bind_address=bind, port=port or (8089 if tls else 8088))


def _check_name(value: str, what: str) -> str:
    if not _NAME.match(value):
        raise PbxConfigInvalid(
            f"{what} {value!r}: use letters, digits, '.', '_' and '-' (up to 64).",
            code="pbx_name_invalid",
            field=what,
        )
    return value


def _check_secret(value: str, what: str) -> str:
    if not _SECRET.match(value):
        raise PbxConfigInvalid(
            f"The {what} cannot be written to an Asterisk file: use printable characters "
            'without spaces or any of ; [ ] , " \\',
            code="pbx_secret_invalid",
            field=what,
        )
    return value


def check_secret(value: str, what: str = "password") -> str:
    """Refuse a secret Asterisk's config syntax would cut short or misread."""
    return _check_secret(value, what)


def render(setup: PbxSetup) -> dict[str, str]:
    """The four files, by name, in ``FILE_NAMES`` order."""
    address = ari_address(setup.ari_url)
    _check_name(setup.ari_username, "ari_username")
    _check_name(setup.app_name, "app_name")
    _check_secret(setup.ari_password, "ari_password")
    if not _SIP_BIND.match(setup.sip_bind):
        raise PbxConfigInvalid(
            f"SIP bind {setup.sip_bind!r} is not ADDRESS:PORT.", code="sip_bind_invalid"
        )
    dids = normalise_dids(setup.dids)
    numbers = [phone.number for phone in setup.phones]
    for phone in setup.phones:
        if not _EXTENSION.match(phone.number):
            raise PbxConfigInvalid(
                f"Extension {phone.number!r} is not 2 to 20 digits.", code="extension_invalid"
            )
        _check_secret(phone.secret, f"secret of extension {phone.number}")
    if len(set(numbers)) != len(numbers):
        raise PbxConfigInvalid("An extension is listed twice.", code="extension_duplicate")
    header = f"; Generated by Atiende for tenant {setup.tenant_slug}, PBX {setup.pbx_name}."
    return {
        "ari.conf": _ari_conf(setup, header),
        "http.conf": _http_conf(address, header),
        "pjsip.conf": _pjsip_conf(setup, header),
        "extensions.conf": _extensions_conf(setup, dids, header),
    }


def _lines(*parts: str | Sequence[str]) -> str:
    out: list[str] = []
    for part in parts:
        out.extend([part] if isinstance(part, str) else part)
    return "\n".join(out) + "\n"


def _ari_conf(setup: PbxSetup, header: str) -> str:
    return _lines(
        header,
        "; The REST interface (ARI) and the user Atiende logs in as.",
        "[general]",
        "enabled = yes",
        "pretty = no",
        "",
        f"[{setup.ari_username}]",
        "type = user",
        "read_only = no",
        f"password = {setup.ari_password}",
        "password_format = plain",
    )


def _http_conf(address: AriAddress, header: str) -> str:
    if not address.tls:
        return _lines(
            header,
            "; ARI (REST and the events WebSocket) is served by Asterisk's HTTP server.",
            "[general]",
            "enabled = yes",
            f"bindaddr = {address.bind_address}",
            f"bindport = {address.port}",
        )
    if address.port == PLAIN_HTTP_PORT:
        raise PbxConfigInvalid(
            f"https on port {PLAIN_HTTP_PORT} clashes with plain HTTP, which stays on "
            f"127.0.0.1:{PLAIN_HTTP_PORT}; use another port (8089 is usual).",
            code="ari_url_invalid",
            field="ari_url",
        )
    return _lines(
        header,
        "; ARI over TLS; plain HTTP stays on the loopback address for local tools.",
        "[general]",
        "enabled = yes",
        "bindaddr = 127.0.0.1",
        f"bindport = {PLAIN_HTTP_PORT}",
        "tlsenable = yes",
        f"tlsbindaddr = {address.bind_address}:{address.port}",
        "; the certificate and key of the PBX's name:",
        "tlscertfile = /etc/asterisk/keys/asterisk.pem",
        "tlsprivatekey = /etc/asterisk/keys/asterisk.key",
    )


def _pjsip_conf(setup: PbxSetup, header: str) -> str:
    endpoints: list[str] = []
    for phone in setup.phones:
        number = phone.number
        endpoints += [
            "",
            f"[{number}](atiende-endpoint)",
            f"auth = {number}",
            f"aors = {number}",
            f"[{number}](atiende-auth)",
            f"username = {number}",
            f"password = {phone.secret}",
            f"[{number}](atiende-aor)",
        ]
    if not setup.phones:
        endpoints = ["", "; The tenant has no extensions yet."]
    return _lines(
        header,
        "; The agents' phones: one endpoint, auth and AOR per extension.",
        f"[{TRANSPORT}]",
        "type = transport",
        "protocol = udp",
        f"bind = {setup.sip_bind}",
        "",
        "[atiende-endpoint](!)",
        "type = endpoint",
        f"transport = {TRANSPORT}",
        f"context = {AGENTS_CONTEXT}",
        "disallow = all",
        "allow = ulaw,alaw",
        "direct_media = no",
        "rtp_symmetric = yes",
        "force_rport = yes",
        "rewrite_contact = yes",
        "",
        "[atiende-auth](!)",
        "type = auth",
        "auth_type = userpass",
        "",
        "[atiende-aor](!)",
        "type = aor",
        "max_contacts = 1",
        "remove_existing = yes",
        endpoints,
    )


def _extensions_conf(setup: PbxSetup, dids: tuple[str, ...], header: str) -> str:
    inbound: list[str] = []
    for did in dids:
        inbound += [
            f"exten => {did},1,NoOp(Atiende: DID {did} of {setup.tenant_slug})",
            f" same => n,Stasis({setup.app_name},{setup.tenant_slug},{did})",
            " same => n,Hangup()",
        ]
    if not dids:
        inbound = ["; No DIDs given (atiende pbx config --did NUMBER)."]
    internal: list[str] = []
    for phone in setup.phones:
        internal += [
            f"exten => {phone.number},1,Dial(PJSIP/{phone.number},{RING_SECONDS})",
            " same => n,Hangup()",
        ]
    return _lines(
        header,
        "; Calls to the tenant's numbers enter the Atiende application; point the trunk's",
        f"; inbound context (or a custom destination) at {INBOUND_CONTEXT}.",
        f"[{INBOUND_CONTEXT}]",
        inbound,
        "",
        "; The agents' phones may call each other.",
        f"[{AGENTS_CONTEXT}]",
        internal,
    )
