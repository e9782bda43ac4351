"""A real Asterisk 22 and SIP phones and callers for end-to-end voice tests.

- ``Asterisk``: the PBX that ``scripts/asterisk.sh`` runs in a Debian sid chroot on the loopback
  address. ``apply(files)`` installs the files Atiende's generator wrote
  (``atiende.voice.pbx.render``) plus the test trunk, and reloads what changed.
- ``AgentPhone``: an agent's phone played by sipp. It registers with the extension's secret
  (digest auth), then answers, rings for ever, or rejects the calls the PBX sends it, and
  reports what happened from sipp's message trace.
- ``Caller``: a customer calling a DID through the test trunk (``X-Trunk: pstn``), with
  their number as caller id; it can send DTMF (SIP INFO) and hangs up, or waits for the PBX
  to hang up.
- ``AriEvents``: one ``AriClient``'s event stream collected in the background, so a test
  waits for the event it expects instead of sleeping.

sipp runs the scenarios in ``sipp/`` next to this file. Every sip and media port comes from
``Ports``, so several phones and callers run at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import random
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import aclosing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypeVar

import httpx

from atiende.voice.ari import AriClient, Connected, StreamItem
from atiende.voice.pbx import INBOUND_CONTEXT, TRANSPORT, PbxSetup, PhoneSecret

REPO: Final = Path(__file__).resolve().parents[2]
SCRIPT: Final = REPO / "scripts" / "asterisk.sh"
BASE_CONF: Final = REPO / "scripts" / "asterisk"
SCENARIOS: Final = Path(__file__).resolve().parent / "sipp"
# The chroot scripts/asterisk.sh builds: root-owned, outside the repository.
ROOT: Final = Path(os.environ.get("ATIENDE_ASTERISK_ROOT", "/var/tmp/atiende-asterisk"))  # noqa: S108

HOST: Final = "127.0.0.1"
SIP_PORT: Final = 5060
ARI_URL: Final = f"http://{HOST}:8088/ari"
ARI_USERNAME: Final = "atiende"
ARI_PASSWORD: Final = os.environ.get("ATIENDE_ASTERISK_ARI_PASSWORD", "atiende-test")
APP: Final = "atiende"
TRUNK_FILE: Final = "pjsip_test_trunk.conf"
TRUNK_ENDPOINT: Final = "pstn"
TRUNK_HEADER: Final = "X-Trunk: pstn"

# What to reload when a file changes; the others (asterisk.conf, modules.conf) are read at
# start only.
RELOADS: Final = {
    "pjsip.conf": "module reload res_pjsip.so",
    TRUNK_FILE: "module reload res_pjsip.so",
    "extensions.conf": "dialplan reload",
    "ari.conf": "module reload res_ari.so",
    "http.conf": "module reload http",
    "rtp.conf": "module reload res_rtp_asterisk.so",
    "logger.conf": "logger reload",
    "manager.conf": "manager reload",
    "musiconhold.conf": "moh reload",
    "indications.conf": "module reload indications",
}

E = TypeVar("E")


class AsteriskUnavailable(Exception):
    """The real Asterisk could not be set up or started here."""


class SippFailed(AssertionError):
    """A sipp phone or caller could not do its part (registration refused, port taken…)."""


# --- configuration ------------------------------------------------------------------------


def pbx_setup(
    *,
    tenant: str = "acme",
    dids: tuple[str, ...] = (),
    phones: tuple[PhoneSecret, ...] = (),
    app: str = APP,
) -> PbxSetup:
    """A PBX set-up that points at the test Asterisk (loopback, test-only credentials)."""
    return PbxSetup(
        tenant_slug=tenant,
        pbx_name="test",
        ari_url=ARI_URL,
        ari_username=ARI_USERNAME,
        ari_password=ARI_PASSWORD,
        app_name=app,
        dids=dids,
        phones=phones,
        sip_bind=f"{HOST}:{SIP_PORT}",
    )


def trunk_conf() -> str:
    """The test-only trunk: calls carrying ``X-Trunk: pstn`` come from endpoint ``pstn``
    (no auth) into the generated inbound context, so the From user (the caller's number)
    can be anything that is not an extension."""
    return "\n".join(
        [
            "; Test only: the carrier trunk the sipp callers come through.",
            f"[{TRUNK_ENDPOINT}]",
            "type = endpoint",
            f"transport = {TRANSPORT}",
            f"context = {INBOUND_CONTEXT}",
            "disallow = all",
            "allow = ulaw,alaw",
            "direct_media = no",
            "rtp_symmetric = yes",
            "",
            f"[{TRUNK_ENDPOINT}-identify]",
            "type = identify",
            f"endpoint = {TRUNK_ENDPOINT}",
            f"match_header = {TRUNK_HEADER}",
            "",
        ]
    )


def with_trunk(files: Mapping[str, str]) -> dict[str, str]:
    """The generated files plus the trunk, included at the end of ``pjsip.conf``."""
    out = dict(files)
    include = f"#include {TRUNK_FILE}"
    pjsip = out.get("pjsip.conf", "")
    if include not in pjsip:
        out["pjsip.conf"] = pjsip.rstrip("\n") + f"\n\n{include}\n"
    out[TRUNK_FILE] = trunk_conf()
    return out


# --- the PBX --------------------------------------------------------------------------------


def run_script(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    # The session lock is ours (session_lock), so the script must not wait for it.
    env = {**os.environ, "ATIENDE_ASTERISK_ROOT": str(ROOT), "ATIENDE_ASTERISK_SESSION": "1"}
    return subprocess.run(
        [str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=env,
        stdin=subprocess.DEVNULL,
    )


def chroot_ready() -> bool:
    return (ROOT / ".atiende-ready").is_file()


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


@contextlib.contextmanager
def session_lock(timeout: float = 90.0) -> Iterator[None]:
    """One test session at a time uses the PBX (its ports are fixed)."""
    path = Path(f"{ROOT}.session.lock")
    with path.open("w") as handle:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise AsteriskUnavailable(
                        f"another test session has held {path} for {timeout:.0f}s"
                    ) from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@dataclass
class Asterisk:
    """The running test PBX."""

    root: Path = ROOT
    ari_url: str = ARI_URL
    ari_username: str = ARI_USERNAME
    ari_password: str = ARI_PASSWORD
    sip_host: str = HOST
    sip_port: int = SIP_PORT
    started_here: bool = False

    @property
    def etc(self) -> Path:
        return self.root / "etc" / "asterisk"

    @property
    def recordings_dir(self) -> Path:
        """Where ARI's ``record`` leaves its files (``/var/spool/asterisk/recording``)."""
        return self.root / "var" / "spool" / "asterisk" / "recording"

    @property
    def console_log(self) -> Path:
        return self.root / "var" / "log" / "asterisk" / "console.log"

    @classmethod
    def launch(cls) -> Asterisk:
        """Set up the chroot if needed and start Asterisk unless it already runs."""
        if os.geteuid() != 0:
            raise AsteriskUnavailable("the real Asterisk needs root (debootstrap, chroot)")
        if not SCRIPT.is_file():
            raise AsteriskUnavailable(f"{SCRIPT} is missing")
        try:
            setup = run_script("setup", timeout=900)
            if setup.returncode != 0:
                raise AsteriskUnavailable(
                    f"scripts/asterisk.sh setup failed:\n{_tail(setup.stderr)}"
                )
            running = run_script("status", timeout=30).returncode == 0
            if not running:
                start = run_script("start", timeout=120)
                if start.returncode != 0:
                    raise AsteriskUnavailable(
                        f"scripts/asterisk.sh start failed:\n{_tail(start.stderr)}"
                    )
        except subprocess.TimeoutExpired as error:
            raise AsteriskUnavailable(f"scripts/asterisk.sh timed out: {error}") from error
        return cls(started_here=not running)

    def stop(self) -> None:
        result = run_script("stop", timeout=60)
        still = run_script("status", timeout=30)
        if result.returncode != 0 or still.returncode == 0:
            raise AsteriskUnavailable(
                f"scripts/asterisk.sh stop failed:\n{_tail(result.stderr)}\n{still.stdout}"
            )

    def cli(self, command: str, *, timeout: float = 20.0) -> str:
        """One Asterisk CLI command (``asterisk -rx``) and its output."""
        result = subprocess.run(
            ["chroot", str(self.root), "/usr/sbin/asterisk", "-rx", command],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        if result.returncode != 0:
            raise AssertionError(
                f"asterisk -rx {command!r} failed ({result.returncode}): "
                f"{result.stderr or result.stdout}"
            )
        return result.stdout

    def log_tail(self, lines: int = 60) -> str:
        """The end of Asterisk's console, for failure messages."""
        try:
            text = self.console_log.read_text(errors="replace")
        except FileNotFoundError:
            return "(no console log)"
        return _tail(text, lines)

    def log_size(self) -> int:
        """A mark in the console log; ``log_since(mark)`` returns what came after it."""
        try:
            return self.console_log.stat().st_size
        except FileNotFoundError:
            return 0

    def log_since(self, mark: int) -> str:
        try:
            with self.console_log.open("rb") as handle:
                handle.seek(mark)
                return handle.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    async def wait_for_log(self, text: str, *, since: int, timeout: float = 5) -> str:
        """Wait until ``text`` appears in the console after the mark ``since``
        (``log_size()``); Asterisk writes its console a little after acting."""
        deadline = time.monotonic() + timeout
        while True:
            logged = self.log_since(since)
            if text in logged:
                return logged
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not logged within {timeout}s:\n{_tail(logged)}")
            await asyncio.sleep(0.05)

    def apply(self, files: Mapping[str, str]) -> list[str]:
        """Install the base configuration, ``files`` (normally ``pbx.render(...)``) and the
        test trunk, then reload the modules whose files changed. Returns the reload
        commands run."""
        wanted = {path.name: path.read_text() for path in sorted(BASE_CONF.glob("*.conf"))}
        wanted.update(with_trunk(files))
        commands: list[str] = []
        for name, text in wanted.items():
            path = self.etc / name
            try:
                current = path.read_text()
            except FileNotFoundError:
                current = None
            if current == text:
                continue
            path.write_text(text)
            command = RELOADS.get(name)
            if command and command not in commands:
                commands.append(command)
        for command in commands:
            output = self.cli(command)
            if "successfully" not in output and "reloaded" not in output.lower():
                if command.startswith(("logger", "manager", "moh")):
                    continue  # these print nothing on success
                raise AssertionError(
                    f"{command!r} answered {output.strip()!r}\n{self.log_tail(20)}"
                )
        return commands

    async def endpoint_state(self, resource: str) -> str:
        """ARI's state of ``PJSIP/<resource>``: ``online`` once a phone registered."""
        async with httpx.AsyncClient(
            auth=(self.ari_username, self.ari_password), timeout=5
        ) as client:
            response = await client.get(f"{self.ari_url}/endpoints/PJSIP/{resource}")
            response.raise_for_status()
            state: str = response.json()["state"]
            return state

    async def wait_endpoint_state(self, resource: str, state: str, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        seen = ""
        while time.monotonic() < deadline:
            seen = await self.endpoint_state(resource)
            if seen == state:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(
            f"PJSIP/{resource} stayed {seen!r}, not {state!r}, for {timeout}s\n"
            f"{self.cli('pjsip show contacts')}"
        )


# --- ports ----------------------------------------------------------------------------------


def _udp_free(port: int) -> bool:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


class Ports:
    """Distinct UDP ports for sipp: SIP ports from 15100, media from 16100 in steps of 4
    (sipp uses the media port and the three after it). Asterisk's RTP range (10000-12000)
    and SIP port stay clear. Each session starts at a random offset, so the retransmissions
    of an earlier session never reach a new phone."""

    SIP_RANGE: Final = (15100, 16000)
    MEDIA_RANGE: Final = (16100, 19900)

    def __init__(self, rng: random.Random | None = None) -> None:
        pick = rng or random.Random()
        self._sip = pick.randrange(*self.SIP_RANGE)
        self._media = self.MEDIA_RANGE[0] + 4 * pick.randrange(
            (self.MEDIA_RANGE[1] - self.MEDIA_RANGE[0]) // 4
        )

    def sip(self) -> int:
        low, high = self.SIP_RANGE
        for _ in range(high - low):
            port = self._sip
            self._sip = low if port + 1 >= high else port + 1
            if _udp_free(port):
                return port
        raise SippFailed("no free UDP port for sipp")

    def media(self) -> int:
        low, high = self.MEDIA_RANGE
        for _ in range((high - low) // 4):
            port = self._media
            self._media = low if port + 4 >= high else port + 4
            if all(_udp_free(port + offset) for offset in range(4)):
                return port
        raise SippFailed("no free media ports for sipp")


# --- sipp's message trace -------------------------------------------------------------------

_ENTRY: Final = re.compile(
    r"^-{20,} (?P<at>\S+ \S+)\n(?:UDP )?message (?P<dir>received|sent)[^\n]*\n",
    re.MULTILINE,
)


@dataclass(frozen=True)
class SipMessage:
    """One message as sipp traced it (``-trace_msg``)."""

    incoming: bool
    start_line: str
    headers: Mapping[str, str]
    body: str

    @property
    def status(self) -> int | None:
        if not self.start_line.startswith("SIP/2.0 "):
            return None
        return int(self.start_line.split()[1])

    @property
    def method(self) -> str:
        """The request's method, or the method a response answers (from CSeq)."""
        if self.status is None:
            return self.start_line.split()[0]
        return self.headers.get("cseq", " ").split()[-1]

    @property
    def call_id(self) -> str:
        return self.headers.get("call-id", "")


def parse_trace(text: str) -> list[SipMessage]:
    messages: list[SipMessage] = []
    entries = list(_ENTRY.finditer(text))
    for index, entry in enumerate(entries):
        end = entries[index + 1].start() if index + 1 < len(entries) else len(text)
        raw = text[entry.end() : end].strip("\n").replace("\r\n", "\n")
        head, _, body = raw.partition("\n\n")
        lines = head.splitlines()
        if not lines:
            continue
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers.setdefault(name.strip().lower(), value.strip())
        messages.append(
            SipMessage(
                incoming=entry.group("dir") == "received",
                start_line=lines[0].strip(),
                headers=headers,
                body=body.strip(),
            )
        )
    return messages


def _read_trace(path: Path) -> list[SipMessage]:
    try:
        return parse_trace(path.read_text(errors="replace"))
    except FileNotFoundError:
        return []


def _by_call(messages: list[SipMessage]) -> dict[str, list[SipMessage]]:
    calls: dict[str, list[SipMessage]] = {}
    for message in messages:
        calls.setdefault(message.call_id, []).append(message)
    return calls


# --- sipp processes -------------------------------------------------------------------------


class _Sipp:
    """One sipp process writing its traces into ``workdir``."""

    def __init__(self, workdir: Path, name: str) -> None:
        self.workdir = workdir
        self.name = name
        self.trace = workdir / f"{name}.messages.log"
        self.errors = workdir / f"{name}.errors.log"
        self.screen = workdir / f"{name}.screen.log"
        self.process: asyncio.subprocess.Process | None = None

    def command(self, scenario: str, port: int, *options: str) -> list[str]:
        return [
            "sipp",
            "-sf",
            str(SCENARIOS / scenario),
            "-i",
            HOST,
            "-p",
            str(port),
            "-nostdin",
            "-trace_msg",
            "-message_file",
            str(self.trace),
            "-trace_err",
            "-error_file",
            str(self.errors),
            *options,
        ]

    async def spawn(self, command: list[str]) -> asyncio.subprocess.Process:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self.screen.open("ab") as screen:
            self.process = await asyncio.create_subprocess_exec(
                *command,
                cwd=self.workdir,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=screen,
                stderr=asyncio.subprocess.STDOUT,
            )
        return self.process

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def wait(self, timeout: float) -> int:
        assert self.process is not None
        try:
            return await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            await self.kill()
            raise

    async def kill(self) -> None:
        """Stop this sipp (TERM, then KILL): its own PID only."""
        process = self.process
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), 3)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()

    def problems(self) -> str:
        parts = []
        for path in (self.errors, self.screen):
            with contextlib.suppress(FileNotFoundError):
                text = path.read_text(errors="replace").strip()
                if text:
                    parts.append(f"{path.name}:\n{_tail(text, 12)}")
        return "\n".join(parts) or "(sipp said nothing)"

    def messages(self) -> list[SipMessage]:
        return _read_trace(self.trace)


def _bound(port: int) -> bool:
    """Whether something listens on 127.0.0.1:port (UDP)."""
    wanted = f"0100007F:{port:04X}"
    try:
        table = Path("/proc/net/udp").read_text()
    except OSError:
        return not _udp_free(port)
    return any(line.split()[1] == wanted for line in table.splitlines()[1:] if line.strip())


# --- agent phones -------------------------------------------------------------------------


@dataclass(frozen=True)
class PhoneCall:
    """One call the PBX sent to the phone."""

    call_id: str
    caller: str  # the INVITE's From header
    answered: bool
    rejected_with: int | None
    cancelled: bool
    bye_from: str | None  # "pbx", "phone", or None while the call lasts
    invite_headers: Mapping[str, str] = field(default_factory=dict)  # lower-case names


@dataclass(frozen=True)
class PhoneReport:
    calls: tuple[PhoneCall, ...]

    @property
    def received(self) -> int:
        return len(self.calls)

    @property
    def answered(self) -> int:
        return sum(call.answered for call in self.calls)

    @property
    def rejected(self) -> int:
        return sum(call.rejected_with is not None for call in self.calls)

    @property
    def cancelled(self) -> int:
        return sum(call.cancelled for call in self.calls)

    @property
    def ended_by_pbx(self) -> int:
        return sum(call.bye_from == "pbx" for call in self.calls)

    @property
    def ended_by_phone(self) -> int:
        return sum(call.bye_from == "phone" for call in self.calls)


def phone_report(messages: list[SipMessage]) -> PhoneReport:
    calls: list[PhoneCall] = []
    for call_id, trail in _by_call(messages).items():
        invite = next(
            (m for m in trail if m.incoming and m.method == "INVITE" and not m.status), None
        )
        if invite is None:
            continue
        finals = [
            m.status
            for m in trail
            if not m.incoming and m.method == "INVITE" and m.status and m.status >= 200
        ]
        bye_in = any(m.incoming and m.start_line.startswith("BYE ") for m in trail)
        bye_out = any(not m.incoming and m.start_line.startswith("BYE ") for m in trail)
        calls.append(
            PhoneCall(
                call_id=call_id,
                caller=invite.headers.get("from", ""),
                answered=200 in finals,
                rejected_with=next((s for s in finals if s >= 300 and s != 487), None),
                cancelled=any(m.incoming and m.start_line.startswith("CANCEL ") for m in trail),
                bye_from="pbx" if bye_in else "phone" if bye_out else None,
                invite_headers=invite.headers,
            )
        )
    return PhoneReport(tuple(calls))


class AgentPhone:
    """An agent's phone: registers ``extension`` with ``secret``, then takes the calls the
    PBX sends it: answers after ``answer_after_ms`` and holds until the PBX hangs up (or
    hangs up itself after ``hangup_after_ms``); or rings until cancelled
    (``never_answer``); or refuses with ``reject_with`` (486, 480 or 603)."""

    REJECT_CODES: Final = (480, 486, 603)

    def __init__(
        self,
        extension: str,
        secret: str,
        sip_port: int,
        media_port: int,
        *,
        workdir: Path,
        answer_after_ms: int = 0,
        hangup_after_ms: int = 0,
        never_answer: bool = False,
        reject_with: int | None = None,
        max_calls: int | None = None,
        expires: int = 3600,
    ) -> None:
        if reject_with is not None and reject_with not in self.REJECT_CODES:
            raise ValueError(f"reject_with must be one of {self.REJECT_CODES}")
        if never_answer and reject_with is not None:
            raise ValueError("a phone either never answers or rejects")
        self.extension = extension
        self.secret = secret
        self.sip_port = sip_port
        self.media_port = media_port
        self.answer_after_ms = answer_after_ms
        self.hangup_after_ms = hangup_after_ms
        self.never_answer = never_answer
        self.reject_with = reject_with
        self.max_calls = max_calls
        self.expires = expires
        self._workdir = workdir
        self._uas = _Sipp(workdir, f"phone-{extension}-{sip_port}")
        self.registered = False

    async def __aenter__(self) -> AgentPhone:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _register(self, expires: int, timeout: float = 10) -> None:
        label = "register" if expires else "unregister"
        sipp = _Sipp(self._workdir, f"{label}-{self.extension}-{self.sip_port}")
        command = sipp.command(
            "register.xml",
            self.sip_port,
            "-m",
            "1",
            "-s",
            self.extension,
            "-au",
            self.extension,
            "-ap",
            self.secret,
            "-set",
            "expires",
            str(expires),
            "-timeout",
            f"{int(timeout)}s",
            f"{HOST}:{SIP_PORT}",
        )
        await sipp.spawn(command)
        try:
            code = await sipp.wait(timeout + 2)
        except TimeoutError:
            code = -1
        if code != 0:
            statuses = [m.start_line for m in sipp.messages() if m.incoming]
            raise SippFailed(
                f"{label} of {self.extension} from port {self.sip_port} failed (sipp exit "
                f"{code}); the PBX answered {statuses}\n{sipp.problems()}"
            )

    def _scenario(self) -> tuple[str, list[str]]:
        if self.never_answer:
            return "agent_ring.xml", []
        if self.reject_with is not None:
            return "agent_reject.xml", ["-set", "reject_code", str(self.reject_with)]
        return "agent_answer.xml", [
            "-set",
            "answer_ms",
            str(self.answer_after_ms),
            "-set",
            "hangup_ms",
            str(self.hangup_after_ms),
        ]

    async def start(self, timeout: float = 10) -> None:
        """Register, then listen on the registered port for the PBX's calls."""
        await self._register(self.expires)
        self.registered = True
        scenario, options = self._scenario()
        if self.max_calls is not None:
            options += ["-m", str(self.max_calls)]
        command = self._uas.command(scenario, self.sip_port, "-mp", str(self.media_port), *options)
        await self._uas.spawn(command)
        deadline = time.monotonic() + timeout
        while not _bound(self.sip_port):
            if not self._uas.running or time.monotonic() > deadline:
                await self._uas.kill()
                raise SippFailed(
                    f"phone {self.extension} did not listen on {self.sip_port}\n"
                    f"{self._uas.problems()}"
                )
            await asyncio.sleep(0.02)

    def report(self) -> PhoneReport:
        """What the phone has seen so far."""
        return phone_report(self._uas.messages())

    async def wait_until(
        self, condition: Callable[[PhoneReport], bool], timeout: float = 10
    ) -> PhoneReport:
        deadline = time.monotonic() + timeout
        while True:
            report = self.report()
            if condition(report):
                return report
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"phone {self.extension}: condition not met in {timeout}s: {report}"
                )
            await asyncio.sleep(0.05)

    async def stop(self) -> PhoneReport:
        """Stop taking calls and remove the registration; the final report."""
        await self._uas.kill()
        if self.registered:
            self.registered = False
            await self._register(0)
        return self.report()


# --- callers ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CallerCall:
    call_id: str
    final_status: int | None  # the INVITE's final response (None: none came)
    reason: str  # its Reason header, e.g. "Q.850;cause=16"
    dtmf_sent: str  # the digits sent as SIP INFO (RFC 2833 events travel in RTP, unseen)
    bye_from: str | None  # "caller", "pbx", or None

    @property
    def answered(self) -> bool:
        return self.final_status == 200


@dataclass(frozen=True)
class CallerResult:
    exit_code: int | None  # sipp's: 0 every call succeeded, 1 some failed
    calls: tuple[CallerCall, ...]
    problems: str = ""

    @property
    def successful(self) -> int:
        """Calls answered and ended with a BYE (by either side)."""
        return sum(call.answered and call.bye_from is not None for call in self.calls)

    @property
    def failed(self) -> int:
        return len(self.calls) - self.successful

    @property
    def final_status(self) -> int | None:
        """The last call's final status."""
        return self.calls[-1].final_status if self.calls else None


def caller_result(
    messages: list[SipMessage], exit_code: int | None, problems: str = ""
) -> CallerResult:
    calls: list[CallerCall] = []
    for call_id, trail in _by_call(messages).items():
        if not any(not m.incoming and m.start_line.startswith("INVITE ") for m in trail):
            continue
        final = next(
            (
                m
                for m in trail
                if m.incoming and m.method == "INVITE" and m.status and m.status >= 200
            ),
            None,
        )
        digits = "".join(
            line.partition("=")[2].strip()
            for m in trail
            if not m.incoming and m.start_line.startswith("INFO ")
            for line in m.body.splitlines()
            if line.lower().startswith("signal=")
        )
        bye_out = any(not m.incoming and m.start_line.startswith("BYE ") for m in trail)
        bye_in = any(m.incoming and m.start_line.startswith("BYE ") for m in trail)
        calls.append(
            CallerCall(
                call_id=call_id,
                final_status=final.status if final else None,
                reason=final.headers.get("reason", "") if final else "",
                dtmf_sent=digits,
                bye_from="caller" if bye_out else "pbx" if bye_in else None,
            )
        )
    return CallerResult(exit_code=exit_code, calls=tuple(calls), problems=problems)


class Caller:
    """A customer calling ``did`` through the test trunk as ``caller_number``. Once
    answered it sends ``dtmf`` and hangs up after ``hangup_after_ms``; with
    ``hangup_after_ms=0`` it waits for the PBX to hang up. ``calls`` calls in all, ``rate``
    new calls per second.

    DTMF goes as SIP INFO (``dtmf_mode="info"``: any digits of 0-9 * # A-D) or as RFC 2833
    events in RTP (``"rfc2833"``). RFC 2833 plays the recordings sip-tester ships, cut from
    one capture of 0 to 9, * and #: their RTP sequence numbers and timestamps rise in that
    order, and Asterisk drops an event older than one it has seen, so the digits of one call
    must follow that order, each at most once ("19#", not "91"). Each lasts about 300 ms, so
    the gap between them is longer."""

    DTMF_MODES: Final = ("info", "rfc2833")
    RFC2833_ORDER: Final = "0123456789*#"

    def __init__(
        self,
        did: str,
        caller_number: str,
        sip_port: int,
        media_port: int,
        *,
        workdir: Path,
        hangup_after_ms: int = 2000,
        dtmf: str = "",
        dtmf_mode: str = "info",
        dtmf_delay_ms: int = 500,
        dtmf_gap_ms: int | None = None,
        calls: int = 1,
        rate: float = 10,
    ) -> None:
        if dtmf_mode not in self.DTMF_MODES:
            raise ValueError(f"dtmf_mode: one of {self.DTMF_MODES}")
        if dtmf_mode == "info" and not re.fullmatch(r"[0-9*#A-D]*", dtmf):
            raise ValueError(f"dtmf {dtmf!r}: SIP INFO sends 0-9, *, # and A-D")
        order = self.RFC2833_ORDER
        if dtmf_mode == "rfc2833" and not (
            all(digit in order for digit in dtmf)
            and [order.index(d) for d in dtmf] == sorted({order.index(d) for d in dtmf})
        ):
            raise ValueError(f"dtmf {dtmf!r}: RFC 2833 sends {order} in this order, once each")
        self.did = did
        self.caller_number = caller_number
        self.sip_port = sip_port
        self.media_port = media_port
        self.hangup_after_ms = hangup_after_ms
        self.dtmf = dtmf
        self.dtmf_mode = dtmf_mode
        self.dtmf_delay_ms = dtmf_delay_ms
        self.dtmf_gap_ms = dtmf_gap_ms or (250 if dtmf_mode == "info" else 600)
        self.calls = calls
        self.rate = rate
        self._sipp = _Sipp(workdir, f"caller-{caller_number}-{sip_port}")

    async def start(self) -> None:
        command = self._sipp.command(
            "caller.xml",
            self.sip_port,
            "-mp",
            str(self.media_port),
            "-s",
            self.did,
            "-set",
            "caller",
            self.caller_number,
            "-set",
            "hangup_ms",
            str(self.hangup_after_ms),
            "-set",
            "dtmf",
            self.dtmf,
            "-set",
            "dtmf_mode",
            self.dtmf_mode,
            "-set",
            "dtmf_delay_ms",
            str(self.dtmf_delay_ms),
            "-set",
            "dtmf_gap_ms",
            str(self.dtmf_gap_ms),
            "-m",
            str(self.calls),
            "-r",
            str(self.rate),
            f"{HOST}:{SIP_PORT}",
        )
        await self._sipp.spawn(command)

    def progress(self) -> CallerResult:
        """The calls so far (sipp still running)."""
        return caller_result(self._sipp.messages(), None)

    async def wait(self, timeout: float = 30) -> CallerResult:
        """Wait for every call to end; on time-out sipp is stopped and the result says what
        happened until then."""
        try:
            code: int | None = await self._sipp.wait(timeout)
        except TimeoutError:
            code = None
        return caller_result(self._sipp.messages(), code, self._sipp.problems())

    async def run(self, timeout: float = 30) -> CallerResult:
        await self.start()
        return await self.wait(timeout)

    async def stop(self) -> None:
        await self._sipp.kill()


@dataclass
class Sipp:
    """Makes phones and callers on distinct ports, all writing into ``workdir``; ``close``
    stops whatever is left."""

    workdir: Path
    ports: Ports
    phones: list[AgentPhone] = field(default_factory=list)
    callers: list[Caller] = field(default_factory=list)

    def phone(self, extension: str, secret: str, **options: Any) -> AgentPhone:
        """An ``AgentPhone`` (not started); ``options`` as ``AgentPhone`` takes them."""
        phone = AgentPhone(
            extension, secret, self.ports.sip(), self.ports.media(), workdir=self.workdir, **options
        )
        self.phones.append(phone)
        return phone

    def caller(self, did: str, caller_number: str, **options: Any) -> Caller:
        """A ``Caller`` (not started); ``options`` as ``Caller`` takes them."""
        caller = Caller(
            did,
            caller_number,
            self.ports.sip(),
            self.ports.media(),
            workdir=self.workdir,
            **options,
        )
        self.callers.append(caller)
        return caller

    async def close(self) -> None:
        for caller in self.callers:
            await caller.stop()
        for phone in self.phones:
            with contextlib.suppress(SippFailed):
                await phone.stop()


# --- ARI events -----------------------------------------------------------------------------


class AriEvents:
    """Collects an ``AriClient``'s events in the background. ``wait_for`` returns the first
    event of a kind (and matching a condition) that it has not returned before, whether it
    arrived earlier or arrives within the time-out: Asterisk may send a channel's first
    events before the REST call that created it returns."""

    def __init__(self, client: AriClient) -> None:
        self.client = client
        self.items: list[StreamItem] = []
        self._taken: set[int] = set()
        self._arrived = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> AriEvents:
        self._task = asyncio.create_task(self._pump())
        await self.wait_for(Connected)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _pump(self) -> None:
        async with aclosing(self.client.events()) as stream:
            async for item in stream:
                self.items.append(item)
                self._arrived.set()

    async def wait_for(
        self,
        kind: type[E],
        where: Callable[[E], bool] = lambda _: True,
        *,
        timeout: float = 10,
    ) -> E:
        deadline = time.monotonic() + timeout
        while True:
            for index, item in enumerate(self.items):
                if index not in self._taken and isinstance(item, kind) and where(item):
                    self._taken.add(index)
                    return item
            if self._task is not None and self._task.done():
                self._task.result()
                raise AssertionError("the ARI event stream ended")
            left = deadline - time.monotonic()
            if left <= 0:
                seen = ", ".join(type(item).__name__ for item in self.items[-15:])
                raise AssertionError(
                    f"no {kind.__name__} as expected within {timeout}s; last events: {seen}"
                )
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), left)
