"""The IVR engine (``voice.ivr``), a pure function of menus and the caller's keys: a menu
plays its prompt and waits; a key chooses a queue, another menu, a repeat, hanging up, an
outside number or voicemail; a wrong key, a silence or a repeat uses an attempt; the timeout
action (else the number's queue) takes the caller when the attempts run out; a call enters
at most five menus; and whatever the caller does, the menu ends in a queue, a hang-up, a
forward to a number or a voicemail."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atiende.voice import ivr
from atiende.voice.ivr import (
    DIGITS,
    MAX_DEPTH,
    HangUp,
    HangUpReason,
    IvrInvalid,
    Menu,
    Option,
    OptionKind,
    Outcome,
    Play,
    ToNumber,
    ToQueue,
    ToVoicemail,
    WaitDigit,
)

FALLBACK = uuid.UUID("00000000-0000-0000-0000-0000000000f0")
VENTAS = uuid.UUID("00000000-0000-0000-0000-0000000000a1")
SOPORTE = uuid.UUID("00000000-0000-0000-0000-0000000000a2")
MAIN = uuid.UUID("00000000-0000-0000-0000-00000000000b")
SUPPORT = uuid.UUID("00000000-0000-0000-0000-00000000000c")
WELCOME = ("sound:custom/welcome",)
SUPPORT_PROMPT = ("sound:custom/support", "digits:2")
INVALID = ("sound:option-is-invalid",)


def queue(queue_id: uuid.UUID | None = None) -> Option:
    return Option(OptionKind.queue, queue_id=queue_id)


def menu_option(menu_id: uuid.UUID) -> Option:
    return Option(OptionKind.menu, menu_id=menu_id)


def number_option(number: str = "+525512345678") -> Option:
    return Option(OptionKind.number, number=number)


def voicemail(queue_id: uuid.UUID | None = None) -> Option:
    return Option(OptionKind.voicemail, queue_id=queue_id)


REPEAT = Option(OptionKind.repeat)
HANGUP = Option(OptionKind.hangup)


def two_menus(**main: object) -> dict[uuid.UUID, Menu]:
    """Main: 1 sales, 2 the support menu, 0 the number's queue, 9 repeat, # hang up. Support:
    1 the support queue, 0 back to main."""
    fields: dict[str, object] = {
        "options": {
            "1": queue(VENTAS),
            "2": menu_option(SUPPORT),
            "0": queue(),
            "9": REPEAT,
            "#": HANGUP,
        },
        "timeout_seconds": 4,
        "max_attempts": 3,
    } | main
    return {
        MAIN: Menu(MAIN, "Main", WELCOME, **fields),  # type: ignore[arg-type]
        SUPPORT: Menu(
            SUPPORT,
            "Support",
            SUPPORT_PROMPT,
            options={"1": queue(SOPORTE), "0": menu_option(MAIN)},
            timeout_seconds=7,
        ),
    }


def keys(menus: Mapping[uuid.UUID, Menu], *inputs: str) -> Outcome:
    """Start in main, then each input: a key, or "t" for a time-out."""
    outcome = ivr.start(menus, MAIN, FALLBACK)
    for item in inputs:
        outcome = (
            ivr.timed_out(outcome.state, menus)
            if item == "t"
            else ivr.press(outcome.state, menus, item)
        )
    return outcome


# --- a menu plays and waits ------------------------------------------------------------------


def test_a_menu_plays_its_prompt_then_waits_for_a_key() -> None:
    outcome = ivr.start(two_menus(), MAIN, FALLBACK)
    assert outcome.actions == (Play(WELCOME), WaitDigit(4))
    assert outcome.end is None
    assert outcome.state == ivr.IvrState(
        menu_id=MAIN, fallback_queue_id=FALLBACK, attempts=0, visited=(MAIN,), path=""
    )


def test_a_key_for_a_queue_queues_the_call_with_the_keys_pressed() -> None:
    outcome = keys(two_menus(), "1")
    assert outcome.actions == (ToQueue(VENTAS, "1"),)
    assert outcome.end == ToQueue(VENTAS, "1")
    assert outcome.state.finished


def test_a_queue_option_without_a_queue_is_the_numbers_queue() -> None:
    assert keys(two_menus(), "0").end == ToQueue(FALLBACK, "0")


def test_a_hang_up_option_hangs_up() -> None:
    outcome = keys(two_menus(), "#")
    assert outcome.actions == (HangUp(HangUpReason.chosen),)


def test_a_key_pressed_while_the_prompt_plays_counts() -> None:
    """Barge-in: the engine never waits for the prompt to finish; call control stops the
    playback when a key arrives."""
    started = ivr.start(two_menus(), MAIN, FALLBACK)
    assert isinstance(started.actions[0], Play)
    assert ivr.press(started.state, two_menus(), "1").end == ToQueue(VENTAS, "1")


# --- attempts -----------------------------------------------------------------------------------


def test_a_wrong_key_says_so_plays_the_prompt_again_and_uses_an_attempt() -> None:
    outcome = keys(two_menus(), "5")
    assert outcome.actions == (Play(INVALID), Play(WELCOME), WaitDigit(4))
    assert outcome.state.attempts == 1
    assert outcome.state.path == ""  # only chosen options make the path


def test_a_letter_key_is_a_wrong_key() -> None:
    assert keys(two_menus(), "A").actions == (Play(INVALID), Play(WELCOME), WaitDigit(4))


def test_a_silence_plays_the_prompt_again_and_uses_an_attempt() -> None:
    outcome = keys(two_menus(), "t")
    assert outcome.actions == (Play(WELCOME), WaitDigit(4))
    assert outcome.state.attempts == 1


def test_the_menus_own_invalid_prompt_is_played() -> None:
    menus = two_menus(invalid_prompt=("sound:custom/try-again",))
    assert keys(menus, "7").actions[0] == Play(("sound:custom/try-again",))


def test_repeat_plays_the_prompt_again_and_uses_an_attempt() -> None:
    outcome = keys(two_menus(), "9")
    assert outcome.actions == (Play(WELCOME), WaitDigit(4))
    assert (outcome.state.attempts, outcome.state.path) == (1, "9")
    assert keys(two_menus(), "9", "9", "9").end == ToQueue(FALLBACK, "999")


def test_when_the_attempts_run_out_the_numbers_queue_takes_the_call() -> None:
    assert keys(two_menus(), "t", "t").end is None
    assert keys(two_menus(), "t", "t", "t").actions == (ToQueue(FALLBACK, ""),)


def test_the_last_wrong_key_still_says_so_before_the_timeout_action() -> None:
    outcome = keys(two_menus(), "5", "t", "6")
    assert outcome.actions == (Play(INVALID), ToQueue(FALLBACK, ""))


def test_one_attempt_means_the_first_mistake_ends_the_menu() -> None:
    assert keys(two_menus(max_attempts=1), "t").end == ToQueue(FALLBACK, "")


@pytest.mark.parametrize(
    ("action", "end"),
    [
        (queue(SOPORTE), ToQueue(SOPORTE, "")),
        (queue(), ToQueue(FALLBACK, "")),
        (HANGUP, HangUp(HangUpReason.no_choice)),
    ],
)
def test_the_timeout_action_takes_the_caller_when_the_attempts_run_out(
    action: Option, end: ToQueue | HangUp
) -> None:
    assert keys(two_menus(timeout_action=action), "t", "5", "t").end == end


def test_a_timeout_action_may_enter_another_menu() -> None:
    outcome = keys(two_menus(timeout_action=menu_option(SUPPORT)), "t", "t", "5")
    assert outcome.actions == (Play(INVALID), Play(SUPPORT_PROMPT), WaitDigit(7))
    assert (outcome.state.menu_id, outcome.state.attempts) == (SUPPORT, 0)
    assert outcome.state.visited == (MAIN, SUPPORT)


# --- menus in menus -----------------------------------------------------------------------------


def test_a_menu_option_enters_the_other_menu_with_fresh_attempts() -> None:
    outcome = keys(two_menus(), "t", "2")
    assert outcome.actions == (Play(SUPPORT_PROMPT), WaitDigit(7))
    assert (outcome.state.menu_id, outcome.state.attempts, outcome.state.path) == (
        SUPPORT,
        0,
        "2",
    )
    assert keys(two_menus(), "t", "2", "1").end == ToQueue(SOPORTE, "21")


def test_a_caller_may_go_back_to_a_menu_they_have_seen() -> None:
    outcome = keys(two_menus(), "t", "t", "2", "0")
    assert outcome.actions == (Play(WELCOME), WaitDigit(4))
    assert outcome.state.attempts == 0  # attempts start again on every entry
    assert outcome.state.visited == (MAIN, SUPPORT, MAIN)
    assert keys(two_menus(), "2", "0", "1").end == ToQueue(VENTAS, "201")


def test_a_call_enters_at_most_five_menus() -> None:
    assert MAX_DEPTH == 5
    back_and_forth = ["2", "0", "2", "0"]
    fifth = keys(two_menus(), *back_and_forth)
    assert fifth.end is None
    assert len(fifth.state.visited) == MAX_DEPTH
    # the sixth entry goes to the number's queue, keeping the path
    assert keys(two_menus(), *back_and_forth, "2").actions == (ToQueue(FALLBACK, "20202"),)


def test_a_menu_that_is_gone_sends_the_call_to_the_numbers_queue() -> None:
    menus = two_menus()
    assert ivr.start(menus, uuid.uuid4(), FALLBACK).actions == (ToQueue(FALLBACK, ""),)
    without_support = {MAIN: menus[MAIN]}
    assert keys(without_support, "2").end == ToQueue(FALLBACK, "2")
    started = ivr.start(menus, MAIN, FALLBACK)
    assert ivr.press(started.state, {}, "1").end == ToQueue(FALLBACK, "")
    assert ivr.timed_out(started.state, {}).end == ToQueue(FALLBACK, "")


def test_a_finished_menu_ignores_further_keys_and_time_outs() -> None:
    done = keys(two_menus(), "1")
    assert ivr.press(done.state, two_menus(), "1") == Outcome(done.state, ())
    assert ivr.timed_out(done.state, two_menus()) == Outcome(done.state, ())


# --- forwards and voicemail ---------------------------------------------------------------------

OUTSIDE = "+525512345678"


def forwarding_menus(**main: object) -> dict[uuid.UUID, Menu]:
    """``two_menus`` with 3 forwarding to an outside number, 4 voicemail for the support
    queue and 5 voicemail for the number's queue; support gets 7, the same number."""
    menus = two_menus(**main)
    options = dict(menus[MAIN].options) | {
        "3": number_option(OUTSIDE),
        "4": voicemail(SOPORTE),
        "5": voicemail(),
    }
    support = menus[SUPPORT]
    return {
        MAIN: replace(menus[MAIN], options=options),
        SUPPORT: replace(support, options={**support.options, "7": number_option(OUTSIDE)}),
    }


def test_a_number_option_forwards_the_call_with_the_keys_pressed() -> None:
    outcome = keys(forwarding_menus(), "3")
    assert outcome.actions == (ToNumber(OUTSIDE, "3"),)
    assert outcome.end == ToNumber(OUTSIDE, "3")
    assert outcome.state.finished
    # from a menu entered from another, after a repeat: every key chosen is in the path
    assert keys(forwarding_menus(), "9", "2", "7").end == ToNumber(OUTSIDE, "927")


def test_a_voicemail_option_takes_a_message_for_its_queue_or_the_numbers() -> None:
    outcome = keys(forwarding_menus(), "4")
    assert outcome.actions == (ToVoicemail(SOPORTE, "4"),)
    assert outcome.state.finished
    assert keys(forwarding_menus(), "5").end == ToVoicemail(FALLBACK, "5")
    assert keys(forwarding_menus(), "t", "9", "5").end == ToVoicemail(FALLBACK, "95")


@pytest.mark.parametrize(
    ("action", "end"),
    [
        (number_option(OUTSIDE), ToNumber(OUTSIDE, "")),
        (voicemail(SOPORTE), ToVoicemail(SOPORTE, "")),
        (voicemail(), ToVoicemail(FALLBACK, "")),
    ],
)
def test_a_timeout_action_may_forward_or_take_a_message(
    action: Option, end: ToNumber | ToVoicemail
) -> None:
    menus = forwarding_menus(timeout_action=action)
    assert keys(menus, "t", "t").end is None  # not before the attempts run out
    assert keys(menus, "t", "t", "t").actions == (end,)
    # the last wrong key still says so first
    assert keys(menus, "t", "t", "6").actions == (Play(INVALID), end)
    # repeats use attempts and make the path
    assert keys(menus, "9", "t", "9").end == replace(end, path="99")


def test_a_timeout_action_in_a_menu_entered_from_another_keeps_the_path() -> None:
    menus = forwarding_menus()
    menus[SUPPORT] = replace(menus[SUPPORT], max_attempts=1, timeout_action=voicemail())
    assert keys(menus, "2", "t").end == ToVoicemail(FALLBACK, "2")


@pytest.mark.parametrize("first", ["3", "4", "5"])
def test_after_a_forward_or_voicemail_keys_and_time_outs_change_nothing(first: str) -> None:
    menus = forwarding_menus()
    done = keys(menus, first)
    assert done.end is not None
    for digit in ("1", "3", "4", "#"):
        assert ivr.press(done.state, menus, digit) == Outcome(done.state, ())
    assert ivr.timed_out(done.state, menus) == Outcome(done.state, ())
    ran_out = keys(forwarding_menus(timeout_action=number_option()), "t", "t", "t")
    assert ivr.press(ran_out.state, menus, "4") == Outcome(ran_out.state, ())
    assert ivr.timed_out(ran_out.state, menus) == Outcome(ran_out.state, ())


# --- what a menu may hold -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"prompt": ()}, "prompt"),
        ({"options": {"x": REPEAT}}, "options"),
        ({"options": {"12": REPEAT}}, "options"),
        ({"timeout_seconds": 0}, "timeout_seconds"),
        ({"timeout_seconds": 31}, "timeout_seconds"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"max_attempts": 6}, "max_attempts"),
        ({"timeout_action": REPEAT}, "timeout_action.action"),
    ],
)
def test_a_menu_refuses_what_makes_no_sense(fields: dict[str, object], field: str) -> None:
    values: dict[str, object] = {"prompt": WELCOME} | fields
    with pytest.raises(IvrInvalid) as refused:
        Menu(MAIN, "Main", **values)  # type: ignore[arg-type]
    assert refused.value.field == field


def test_a_menus_options_cannot_change_under_the_engine() -> None:
    options = {"1": queue(VENTAS)}
    menu = Menu(MAIN, "Main", WELCOME, options=options)
    options["2"] = HANGUP
    assert set(menu.options) == {"1"}
    with pytest.raises(TypeError):
        menu.options["3"] = HANGUP  # type: ignore[index]


@pytest.mark.parametrize(
    ("option", "field"),
    [
        ({"action": "menu"}, "menu_id"),
        ({"action": "repeat", "queue_id": str(VENTAS)}, "queue_id"),
        ({"action": "hangup", "menu_id": str(MAIN)}, "menu_id"),
        ({"action": "queue", "menu_id": str(MAIN)}, "menu_id"),
        ({"action": "number"}, "number"),
        ({"action": "number", "number": None}, "number"),
        ({"action": "queue", "number": OUTSIDE}, "number"),
        ({"action": "voicemail", "number": OUTSIDE}, "number"),
        ({"action": "hangup", "number": OUTSIDE}, "number"),
        ({"action": "number", "number": OUTSIDE, "queue_id": str(VENTAS)}, "queue_id"),
        ({"action": "number", "number": OUTSIDE, "menu_id": str(MAIN)}, "menu_id"),
        ({"action": "voicemail", "menu_id": str(MAIN)}, "menu_id"),
    ],
)
def test_an_option_holds_only_what_its_action_uses(option: dict[str, str], field: str) -> None:
    with pytest.raises(IvrInvalid) as refused:
        ivr.parse_option(option, field="options.1")
    assert refused.value.field == f"options.1.{field}"


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ([], "options"),
        ({"a": {"action": "repeat"}}, "options"),
        ({"11": {"action": "repeat"}}, "options"),
        ({"1": "queue"}, "options.1"),
        ({"1": {"action": "dial"}}, "options.1.action"),
        ({"1": {}}, "options.1.action"),
        ({"*": {"action": "queue", "queue_id": "ventas"}}, "options.*.queue_id"),
        ({"#": {"action": "menu", "menu_id": 7}}, "options.#.menu_id"),
        ({"2": {"action": "repeat", "say": "hello"}}, "options.2.say"),
    ],
)
def test_options_as_json_name_the_part_that_is_wrong(options: object, field: str) -> None:
    with pytest.raises(IvrInvalid) as refused:
        ivr.parse_options(options)
    assert refused.value.field == field


def test_options_as_json_come_back_in_keypad_order_and_round_trip() -> None:
    stored = {
        "#": {"action": "hangup"},
        "0": {"action": "queue"},
        "*": {"action": "repeat"},
        "2": {"action": "menu", "menu_id": str(SUPPORT)},
        "1": {"action": "queue", "queue_id": str(VENTAS)},
    }
    parsed = ivr.parse_options(stored)
    assert list(parsed) == ["0", "1", "2", "*", "#"]
    assert parsed["1"] == queue(VENTAS)
    assert parsed["0"] == queue()
    assert {digit: ivr.option_json(option) for digit, option in parsed.items()} == stored


@pytest.mark.parametrize(
    ("written", "stored"),
    [
        ("+525512345678", "+525512345678"),
        ("55 1234 5678", "+525512345678"),  # national: read as a number in Mexico
        ("(55) 1234-5678", "+525512345678"),
        ("+52 55 1234 5678", "+525512345678"),
        ("33 1234 5678", "+523312345678"),
        ("+1 202 456 1111", "+12024561111"),
    ],
)
def test_a_number_option_stores_its_number_in_e164(written: str, stored: str) -> None:
    option = ivr.parse_option({"action": "number", "number": written}, field="options.3")
    assert option == Option(OptionKind.number, number=stored)
    assert ivr.option_json(option) == {"action": "number", "number": stored}
    timeout = ivr.parse_option(
        {"action": "number", "number": written}, field="timeout_action", timeout_action=True
    )
    assert timeout.number == stored


@pytest.mark.parametrize("number", ["12345", "hola", "+52 55", "", "+999 1234567", 5512345678])
def test_a_number_that_is_not_a_phone_number_is_refused(number: object) -> None:
    with pytest.raises(IvrInvalid) as refused:
        ivr.parse_options({"3": {"action": "number", "number": number}})
    assert refused.value.field == "options.3.number"
    with pytest.raises(IvrInvalid) as refused:
        ivr.parse_option(
            {"action": "number", "number": number}, field="timeout_action", timeout_action=True
        )
    assert refused.value.field == "timeout_action.number"


def test_an_option_built_in_code_needs_its_number_in_e164() -> None:
    for number in (None, "", "5512345678", "+0123456789", "+52 55 1234 5678"):
        with pytest.raises(IvrInvalid) as refused:
            Option(OptionKind.number, number=number)
        assert refused.value.field == "number"
    with pytest.raises(IvrInvalid) as refused:
        Option(OptionKind.voicemail, number=OUTSIDE)
    assert refused.value.field == "number"


def test_a_voicemail_option_may_name_its_queue() -> None:
    assert ivr.parse_option(
        {"action": "voicemail", "queue_id": str(SOPORTE)}, field="options.4"
    ) == voicemail(SOPORTE)
    assert ivr.parse_option({"action": "voicemail"}, field="options.5") == voicemail()
    assert ivr.parse_option(
        {"action": "voicemail", "queue_id": str(VENTAS)},
        field="timeout_action",
        timeout_action=True,
    ) == voicemail(VENTAS)


def test_forwards_and_voicemails_as_json_round_trip() -> None:
    stored = {
        "3": {"action": "number", "number": OUTSIDE},
        "4": {"action": "voicemail", "queue_id": str(SOPORTE)},
        "5": {"action": "voicemail"},
    }
    parsed = ivr.parse_options(stored)
    assert parsed == {"3": number_option(OUTSIDE), "4": voicemail(SOPORTE), "5": voicemail()}
    assert {digit: ivr.option_json(option) for digit, option in parsed.items()} == stored
    for option in parsed.values():
        again = ivr.parse_option(ivr.option_json(option), field="timeout_action")
        assert again == option


def test_the_timeout_action_cannot_be_repeat() -> None:
    with pytest.raises(IvrInvalid) as refused:
        ivr.parse_option({"action": "repeat"}, field="timeout_action", timeout_action=True)
    assert refused.value.field == "timeout_action.action"


@pytest.mark.parametrize(
    ("text", "media"),
    [
        ("sound:custom/welcome", ("sound:custom/welcome",)),
        (
            " sound:custom/welcome , digits:123#, number:42,tone:ring ",
            ("sound:custom/welcome", "digits:123#", "number:42", "tone:ring"),
        ),
        ("recording:menus/main-v2", ("recording:menus/main-v2",)),
        ("sound:en/vm-press_1.x", ("sound:en/vm-press_1.x",)),
        ("number:-7", ("number:-7",)),
    ],
)
def test_prompts_are_asterisk_media_uris(text: str, media: tuple[str, ...]) -> None:
    assert ivr.parse_media(text) == media
    assert ivr.media_text(media) == ",".join(media)


@pytest.mark.parametrize(
    "text",
    [
        "",
        " , ",
        "sound:a,,sound:b",
        "sound:a,",
        "welcome",
        "http://example.com/a.wav",
        "file:/etc/passwd",
        "sound:",
        "sound:../../etc/passwd",
        "sound:/etc/passwd",
        "sound:custom/../secret",
        "recording:a b",
        "digits:12a",
        "number:1.5",
        "tone:!350+440/100",
        "sound:" + "a" * 200,
        ",".join(["sound:a"] * 11),
    ],
)
def test_anything_else_is_not_a_prompt(text: str) -> None:
    with pytest.raises(IvrInvalid) as refused:
        ivr.parse_media(text, field="invalid_prompt")
    assert refused.value.field == "invalid_prompt"


# --- every caller leaves the menu ---------------------------------------------------------------

QUEUES = [VENTAS, SOPORTE, None]
NUMBERS = ["+525512345678", "+12024561111"]
MENU_IDS = [uuid.UUID(int=i + 1) for i in range(6)]


@st.composite
def option_for(draw: st.DrawFn, *, timeout_action: bool = False) -> Option:
    kinds = [
        OptionKind.queue,
        OptionKind.menu,
        OptionKind.hangup,
        OptionKind.number,
        OptionKind.voicemail,
    ]
    if not timeout_action:
        kinds.append(OptionKind.repeat)
    kind = draw(st.sampled_from(kinds))
    if kind is OptionKind.queue:
        return queue(draw(st.sampled_from(QUEUES)))
    if kind is OptionKind.voicemail:
        return voicemail(draw(st.sampled_from(QUEUES)))
    if kind is OptionKind.number:
        return number_option(draw(st.sampled_from(NUMBERS)))
    if kind is OptionKind.menu:
        # now and then a menu that does not exist (deleted since)
        return menu_option(draw(st.sampled_from([*MENU_IDS, uuid.UUID(int=99)])))
    return Option(kind)


@st.composite
def menu_graphs(draw: st.DrawFn) -> dict[uuid.UUID, Menu]:
    count = draw(st.integers(1, len(MENU_IDS)))
    menus = {}
    for menu_id in MENU_IDS[:count]:
        options = draw(st.dictionaries(st.sampled_from(DIGITS), option_for(), max_size=12))
        menus[menu_id] = Menu(
            menu_id,
            f"menu {menu_id.int}",
            WELCOME,
            options=options,
            timeout_seconds=draw(st.integers(1, 30)),
            max_attempts=draw(st.integers(1, 5)),
            timeout_action=draw(st.none() | option_for(timeout_action=True)),
        )
    return menus


caller_inputs = st.lists(st.sampled_from([*DIGITS, "A", "t"]), min_size=30, max_size=30)


@settings(max_examples=200, deadline=None)
@given(menus=menu_graphs(), inputs=caller_inputs)
def test_any_keys_end_the_menu_within_attempts_times_depth(
    menus: dict[uuid.UUID, Menu], inputs: list[str]
) -> None:
    bound = max(menu.max_attempts for menu in menus.values()) * MAX_DEPTH
    assert bound <= len(inputs)
    outcome = ivr.start(menus, MENU_IDS[0], FALLBACK)
    pressed = ""
    steps = 0
    while outcome.end is None:
        state = outcome.state
        menu = menus[state.menu_id]
        # in a menu: the prompt plays and a key is awaited, attempts left, depth respected
        assert outcome.actions[-2:] == (Play(menu.prompt), WaitDigit(menu.timeout_seconds))
        assert 0 <= state.attempts < menu.max_attempts
        assert 1 <= len(state.visited) <= MAX_DEPTH
        assert state.visited[-1] == state.menu_id
        assert steps < bound, "the caller is still in a menu"
        item = inputs[steps]
        steps += 1
        if item == "t":
            outcome = ivr.timed_out(state, menus)
        else:
            if item in menu.options:
                pressed += item
            outcome = ivr.press(state, menus, item)
    assert outcome.state.finished
    end = outcome.end
    ends = ToQueue | HangUp | ToNumber | ToVoicemail
    assert isinstance(end, ends)
    assert [a for a in outcome.actions if isinstance(a, ends)] == [end]
    if isinstance(end, ToQueue | ToVoicemail):
        assert end.queue_id in {VENTAS, SOPORTE, FALLBACK}
    if isinstance(end, ToNumber):
        assert end.number in NUMBERS
    if not isinstance(end, HangUp):
        assert end.path == pressed
    # and nothing moves it afterwards
    assert ivr.press(outcome.state, menus, "1").actions == ()
    assert ivr.timed_out(outcome.state, menus).actions == ()


@settings(max_examples=50, deadline=None)
@given(menus=menu_graphs(), inputs=caller_inputs)
def test_the_engine_is_a_function_of_its_inputs(
    menus: dict[uuid.UUID, Menu], inputs: list[str]
) -> None:
    def run() -> list[Outcome]:
        outcome = ivr.start(menus, MENU_IDS[0], FALLBACK)
        seen = [outcome]
        for item in inputs:
            if item == "t":
                outcome = ivr.timed_out(outcome.state, menus)
            else:
                outcome = ivr.press(outcome.state, menus, item)
            seen.append(outcome)
        return seen

    assert run() == run()
