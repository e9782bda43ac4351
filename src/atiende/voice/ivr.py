"""IVR menus: what a caller hears and where their keypad sends them. Pure: no I/O, no clock.

A number with a menu (``voice_numbers.ivr_menu_id``) plays it before the call queues. The
engine takes the tenant's menus (``ivr_store.load_menus``) and the caller's inputs, and
answers every input with an ``Outcome``: the new ``IvrState`` and the actions for call control
to carry out, in order:

- ``Play(media)``: play the Asterisk media URIs, one after the other (one ARI ``play`` with
  several ``media``);
- ``WaitDigit(seconds)``: once the media before it has finished, wait that long for a key,
  then call ``timed_out``;
- ``ToQueue(queue_id, path)``: the menu is over; queue the call (``path`` holds the keys of
  the options the caller chose, e.g. ``"13"``, for the timeline);
- ``HangUp(reason)``: the menu is over; hang up;
- ``ToNumber(number, path)``: the menu is over; forward the call to an outside number (E.164);
- ``ToVoicemail(queue_id, path)``: the menu is over; the caller leaves a message for the
  queue (its voicemail prompt; the message is kept with the call).

An outcome that ends the menu ends with one of the last four; after it, ``press`` and
``timed_out`` change nothing. A key pressed while a prompt still plays counts (barge-in):
call control stops the playback and carries out the new outcome's actions.

Rules:

- A key that is not one of the menu's options plays the menu's ``invalid_prompt``, then
  the prompt again; it counts an attempt. A time-out with no key counts an attempt and plays
  the prompt again. A ``repeat`` option plays the prompt again and counts an attempt too, so
  no caller stays in a menu for ever.
- When the attempts reach the menu's ``max_attempts``, its ``timeout_action`` runs: a queue,
  another menu or hanging up; without one, the call goes to the fallback queue given to
  ``start`` (the number's queue).
- A ``queue`` option without a queue means the fallback queue too.
- A ``menu`` option enters another menu, whose attempts start from zero. A caller may go back
  to a menu they have seen (``0`` for the main menu), but a call enters at most
  ``MAX_DEPTH`` menus: the entry that would be one more goes to the fallback queue instead.
  A menu that is not in the mapping (deleted meanwhile) does the same. So every sequence of
  inputs ends, at the latest after ``max_attempts * MAX_DEPTH`` of them.

Usage (how call control drives it)::

    menus = await ivr_store.load_menus(session, tenant_id)
    outcome = ivr.start(menus, number.ivr_menu_id, number.queue_id)
    # ... carry out outcome.actions; then, for every ChannelDtmfReceived while in the menu:
    outcome = ivr.press(outcome.state, menus, event.digit)
    # ... and when a WaitDigit's seconds pass with no key:
    outcome = ivr.timed_out(outcome.state, menus)
    match outcome.end:
        case ivr.ToQueue(queue_id=queue_id, path=path):
            ...  # legs.Enqueue(queue_id); the timeline gets the path
        case ivr.HangUp(reason=reason):
            ...  # hang up the caller
        case None:
            ...  # still in the menu: play and wait again
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Final

import phonenumbers

#: An outside number as options store it.
E164: Final = re.compile(r"\+[1-9][0-9]{6,14}")
#: The keys of a phone, in the order menus list them.
DIGITS: Final = "0123456789*#"
#: How many menus one call may enter (the first included).
MAX_DEPTH: Final = 5
MIN_TIMEOUT_SECONDS: Final = 1
MAX_TIMEOUT_SECONDS: Final = 30
MIN_ATTEMPTS: Final = 1
MAX_ATTEMPTS: Final = 5
DEFAULT_INVALID_PROMPT: Final = "sound:option-is-invalid"
#: At most this many media URIs in one prompt.
MAX_MEDIA: Final = 10

_FILE = r"[A-Za-z0-9_][A-Za-z0-9_.\-]*(?:/[A-Za-z0-9_][A-Za-z0-9_.\-]*)*"
#: What each media scheme plays, and what may follow it. Files are relative to Asterisk's
#: sounds (or recordings) directory: no absolute paths, no ``..``.
_MEDIA: Final = {
    "sound": re.compile(_FILE),  # a sound file, e.g. custom/welcome (no extension)
    "recording": re.compile(_FILE),  # a stored recording
    "digits": re.compile(r"[0-9*#]{1,20}"),  # said one by one
    "number": re.compile(r"-?[0-9]{1,15}"),  # said as a number
    "tone": re.compile(r"[A-Za-z0-9_\-]{1,40}"),  # an indication of indications.conf: ring, busy
}
_MEDIA_LENGTH: Final = 200


class OptionKind(StrEnum):
    queue = "queue"  # queue the call (in the option's queue, else the fallback queue)
    menu = "menu"  # enter another menu
    repeat = "repeat"  # hear the prompt again
    hangup = "hangup"
    number = "number"  # forward the call to an outside number
    voicemail = "voicemail"  # leave a message (for the option's queue, else the fallback)


class HangUpReason(StrEnum):
    chosen = "chosen"  # the caller pressed a hang-up option
    no_choice = "no_choice"  # the attempts ran out and the menu's timeout action hangs up


class IvrInvalid(ValueError):
    """A menu's configuration is not valid: ``field`` names the part (``prompt``,
    ``options.1.queue_id``, ``timeout_action.action``...)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class Option:
    """What a key (or the end of the attempts) does."""

    action: OptionKind
    queue_id: uuid.UUID | None = None  # queue, voicemail: None is the fallback queue
    menu_id: uuid.UUID | None = None  # menu: the menu entered
    number: str | None = None  # number: the outside number, E.164

    def __post_init__(self) -> None:
        if self.action is OptionKind.menu and self.menu_id is None:
            raise IvrInvalid("menu_id", "A menu option needs the menu it enters.")
        if self.queue_id is not None and self.action not in (
            OptionKind.queue,
            OptionKind.voicemail,
        ):
            raise IvrInvalid("queue_id", f"A {self.action} option takes no queue.")
        if self.action is OptionKind.number and not (self.number and E164.fullmatch(self.number)):
            raise IvrInvalid("number", "A number option needs a number in E.164 (+5255…).")
        if self.number is not None and self.action is not OptionKind.number:
            raise IvrInvalid("number", f"A {self.action} option takes no number.")
        if self.menu_id is not None and self.action is not OptionKind.menu:
            raise IvrInvalid("menu_id", f"A {self.action} option takes no menu.")


@dataclass(frozen=True, slots=True)
class Menu:
    id: uuid.UUID
    name: str
    prompt: tuple[str, ...]
    options: Mapping[str, Option] = field(default_factory=dict)
    invalid_prompt: tuple[str, ...] = (DEFAULT_INVALID_PROMPT,)
    timeout_seconds: int = 5
    max_attempts: int = 3
    timeout_action: Option | None = None  # None: the fallback queue

    def __post_init__(self) -> None:
        if not self.prompt:
            raise IvrInvalid("prompt", "A menu needs something to play.")
        for digit in self.options:
            if len(digit) != 1 or digit not in DIGITS:
                raise IvrInvalid("options", f"{digit!r} is not a key of a phone (0-9, *, #).")
        if not MIN_TIMEOUT_SECONDS <= self.timeout_seconds <= MAX_TIMEOUT_SECONDS:
            raise IvrInvalid("timeout_seconds", "The time-out is 1 to 30 seconds.")
        if not MIN_ATTEMPTS <= self.max_attempts <= MAX_ATTEMPTS:
            raise IvrInvalid("max_attempts", "The attempts are 1 to 5.")
        if self.timeout_action is not None and self.timeout_action.action is OptionKind.repeat:
            raise IvrInvalid("timeout_action.action", "The timeout action cannot be repeat.")
        # A read-only copy: a Menu never changes under the engine.
        object.__setattr__(self, "options", MappingProxyType(dict(self.options)))


@dataclass(frozen=True, slots=True)
class IvrState:
    """Where a caller is: the menu, the attempts used in it since entering it, the menus
    entered so far (in order; ``len(visited)`` is the depth), the keys of the options chosen,
    and whether the menu is over."""

    menu_id: uuid.UUID
    fallback_queue_id: uuid.UUID
    attempts: int = 0
    visited: tuple[uuid.UUID, ...] = ()
    path: str = ""
    finished: bool = False


@dataclass(frozen=True, slots=True)
class Play:
    media: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class WaitDigit:
    seconds: int


@dataclass(frozen=True, slots=True)
class ToQueue:
    queue_id: uuid.UUID
    path: str


@dataclass(frozen=True, slots=True)
class HangUp:
    reason: HangUpReason


@dataclass(frozen=True, slots=True)
class ToNumber:
    number: str
    path: str


@dataclass(frozen=True, slots=True)
class ToVoicemail:
    queue_id: uuid.UUID
    path: str


End = ToQueue | HangUp | ToNumber | ToVoicemail
IvrAction = Play | WaitDigit | ToQueue | HangUp | ToNumber | ToVoicemail


@dataclass(frozen=True, slots=True)
class Outcome:
    state: IvrState
    actions: tuple[IvrAction, ...]

    @property
    def end(self) -> End | None:
        """How the menu ended, when this outcome ends it."""
        if self.actions and isinstance(self.actions[-1], ToQueue | HangUp | ToNumber | ToVoicemail):
            return self.actions[-1]
        return None


# --- the engine -------------------------------------------------------------------------------


def start(
    menus: Mapping[uuid.UUID, Menu], menu_id: uuid.UUID, fallback_queue_id: uuid.UUID
) -> Outcome:
    """A call enters ``menu_id``; ``fallback_queue_id`` (the number's queue) takes it when
    nothing else does."""
    state = IvrState(menu_id=menu_id, fallback_queue_id=fallback_queue_id)
    return _enter(state, menus, menu_id, ())


def press(state: IvrState, menus: Mapping[uuid.UUID, Menu], digit: str) -> Outcome:
    """The caller pressed ``digit`` (while the prompt plays or after it)."""
    if state.finished:
        return Outcome(state, ())
    menu = menus.get(state.menu_id)
    if menu is None:
        return _finish(state, ToQueue(state.fallback_queue_id, state.path))
    option = menu.options.get(digit)
    if option is None:
        return _failed(state, menus, menu, (Play(menu.invalid_prompt),))
    return _chosen(replace(state, path=state.path + digit), menus, menu, option)


def _chosen(
    state: IvrState, menus: Mapping[uuid.UUID, Menu], menu: Menu, option: Option
) -> Outcome:
    match option.action:
        case OptionKind.queue:
            return _finish(state, ToQueue(option.queue_id or state.fallback_queue_id, state.path))
        case OptionKind.hangup:
            return _finish(state, HangUp(HangUpReason.chosen))
        case OptionKind.number:
            assert option.number is not None  # Option checks it
            return _finish(state, ToNumber(option.number, state.path))
        case OptionKind.voicemail:
            return _finish(
                state, ToVoicemail(option.queue_id or state.fallback_queue_id, state.path)
            )
        case OptionKind.repeat:
            return _failed(state, menus, menu, ())
        case OptionKind.menu:
            assert option.menu_id is not None  # Option checks it
            return _enter(state, menus, option.menu_id, ())


def timed_out(state: IvrState, menus: Mapping[uuid.UUID, Menu]) -> Outcome:
    """The menu's time-out passed after the prompt without a key."""
    if state.finished:
        return Outcome(state, ())
    menu = menus.get(state.menu_id)
    if menu is None:
        return _finish(state, ToQueue(state.fallback_queue_id, state.path))
    return _failed(state, menus, menu, ())


def _enter(
    state: IvrState,
    menus: Mapping[uuid.UUID, Menu],
    menu_id: uuid.UUID,
    lead: tuple[IvrAction, ...],
) -> Outcome:
    menu = menus.get(menu_id)
    if menu is None or len(state.visited) >= MAX_DEPTH:
        return _finish(state, ToQueue(state.fallback_queue_id, state.path), lead)
    entered = replace(state, menu_id=menu_id, attempts=0, visited=(*state.visited, menu_id))
    return Outcome(entered, (*lead, *_prompt(menu)))


def _failed(
    state: IvrState,
    menus: Mapping[uuid.UUID, Menu],
    menu: Menu,
    lead: tuple[IvrAction, ...],
) -> Outcome:
    """One attempt used: the prompt again, or the timeout action when they are all used."""
    state = replace(state, attempts=state.attempts + 1)
    if state.attempts < menu.max_attempts:
        return Outcome(state, (*lead, *_prompt(menu)))
    action = menu.timeout_action
    if action is None or action.action in (OptionKind.queue, OptionKind.repeat):
        queue_id = action.queue_id if action is not None else None
        return _finish(state, ToQueue(queue_id or state.fallback_queue_id, state.path), lead)
    if action.action is OptionKind.hangup:
        return _finish(state, HangUp(HangUpReason.no_choice), lead)
    if action.action is OptionKind.number:
        assert action.number is not None  # Option checks it
        return _finish(state, ToNumber(action.number, state.path), lead)
    if action.action is OptionKind.voicemail:
        queue_id = action.queue_id or state.fallback_queue_id
        return _finish(state, ToVoicemail(queue_id, state.path), lead)
    assert action.menu_id is not None  # Option checks it
    return _enter(state, menus, action.menu_id, lead)


def _prompt(menu: Menu) -> tuple[IvrAction, ...]:
    return (Play(menu.prompt), WaitDigit(menu.timeout_seconds))


def _finish(state: IvrState, end: End, lead: tuple[IvrAction, ...] = ()) -> Outcome:
    return Outcome(replace(state, finished=True), (*lead, end))


# --- configuration: media and options as an administrator writes them ---------------------------


def parse_media(text: str, *, field: str = "prompt") -> tuple[str, ...]:
    """``"sound:custom/welcome, digits:123"`` → its media URIs. Schemes: ``sound:``,
    ``recording:``, ``digits:``, ``number:``, ``tone:``."""
    items = [item.strip() for item in text.split(",")]
    if not any(items):
        raise IvrInvalid(field, "Give at least one media to play, e.g. sound:custom/welcome.")
    if len(items) > MAX_MEDIA:
        raise IvrInvalid(field, f"At most {MAX_MEDIA} media, separated by commas.")
    for item in items:
        scheme, _, resource = item.partition(":")
        pattern = _MEDIA.get(scheme)
        if not item or len(item) > _MEDIA_LENGTH or pattern is None:
            raise IvrInvalid(
                field,
                f"{item!r} is not a media: write sound:, recording:, digits:, number: or tone: "
                "and what to play, separated by commas.",
            )
        if not pattern.fullmatch(resource):
            raise IvrInvalid(field, f"{item!r}: {scheme}: cannot play {resource!r}.")
    return tuple(items)


def media_text(media: tuple[str, ...]) -> str:
    """The stored form of ``parse_media``'s result."""
    return ",".join(media)


def parse_option(value: object, *, field: str, timeout_action: bool = False) -> Option:
    """One option as JSON (``{"action": "queue", "queue_id": "..."}``) → an ``Option``;
    ``field`` prefixes the names of the parts in errors."""
    if not isinstance(value, Mapping):
        raise IvrInvalid(field, 'An option is an object such as {"action": "queue"}.')
    extra = sorted(
        str(key) for key in value if key not in ("action", "queue_id", "menu_id", "number")
    )
    if extra:
        raise IvrInvalid(f"{field}.{extra[0]}", f"An option has no {extra[0]!r}.")
    allowed = [kind for kind in OptionKind if not (timeout_action and kind is OptionKind.repeat)]
    action = value.get("action")
    if action not in allowed:
        raise IvrInvalid(f"{field}.action", f"The action is one of {', '.join(allowed)}.")
    ids: dict[str, uuid.UUID | None] = {}
    for key in ("queue_id", "menu_id"):
        raw = value.get(key)
        try:
            ids[key] = None if raw is None else uuid.UUID(str(raw))
        except ValueError:
            raise IvrInvalid(f"{field}.{key}", f"{raw!r} is not an id.") from None
    number = value.get("number")
    if number is not None:
        number = normalise_number(number, field=f"{field}.number")
    try:
        return Option(OptionKind(action), ids["queue_id"], ids["menu_id"], number)
    except IvrInvalid as error:
        raise IvrInvalid(f"{field}.{error.field}", error.message) from None


def parse_options(value: object) -> dict[str, Option]:
    """``{"1": {...}, "9": {"action": "repeat"}}`` → options by key, in ``DIGITS`` order."""
    if not isinstance(value, Mapping):
        raise IvrInvalid("options", "The options are an object with keys of the phone.")
    for digit in value:
        if not (isinstance(digit, str) and len(digit) == 1 and digit in DIGITS):
            raise IvrInvalid("options", f"{digit!r} is not a key of a phone (0-9, *, #).")
    return {
        digit: parse_option(value[digit], field=f"options.{digit}")
        for digit in sorted(value, key=DIGITS.index)
    }


def option_json(option: Option) -> dict[str, Any]:
    """An option as stored and returned: only the parts it has."""
    data: dict[str, Any] = {"action": option.action.value}
    if option.queue_id is not None:
        data["queue_id"] = str(option.queue_id)
    if option.menu_id is not None:
        data["menu_id"] = str(option.menu_id)
    if option.number is not None:
        data["number"] = option.number
    return data


def normalise_number(value: object, *, field: str = "number", region: str = "MX") -> str:
    """An outside number as an administrator writes it (national numbers read in ``region``)
    → E.164."""
    if not isinstance(value, str):
        raise IvrInvalid(field, "The number is text, e.g. +525512345678.")
    try:
        parsed = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        raise IvrInvalid(field, f"{value!r} is not a phone number.") from None
    if not phonenumbers.is_valid_number(parsed):
        raise IvrInvalid(field, f"{value!r} is not a valid phone number.")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
