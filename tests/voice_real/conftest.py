"""Fixtures for the tests that run against a real Asterisk 22 (``scripts/asterisk.sh``).

- ``asterisk`` (session): set up the chroot if needed, start Asterisk unless it already
  runs, and stop it at the end if this session started it. One test session uses it at a
  time (a lock next to the chroot). Where it cannot run (not root, no mirror, the package
  gone from sid…) the tests are skipped with the reason, or fail with it when
  ``ATIENDE_REQUIRE_ASTERISK=1`` (CI).
- ``sipp``: makes agent phones and callers on free ports, writing their traces into the
  test's temporary directory, and stops whatever is left after the test.
- ``ari``: an ``AriClient`` for the test PBX, with its events collected (``AriEvents``).
- ``centre``: a tenant with a voice queue, a number and the test PBX, with call control
  running (``voice_real.centre``).

Tests import the helpers as ``from voice_real.harness import ...``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from fastapi import FastAPI

from atiende.core.config import Settings
from atiende.core.db import Database
from atiende.voice.ari import AriClient
from voice_real.centre import Centre, running_centre
from voice_real.harness import (
    AriEvents,
    Asterisk,
    AsteriskUnavailable,
    Ports,
    Sipp,
    chroot_ready,
    session_lock,
)

REQUIRED = os.environ.get("ATIENDE_REQUIRE_ASTERISK") == "1"
HERE = Path(__file__).resolve().parent
# A cold set-up (debootstrap and apt) takes a minute or two; it happens inside the first
# test's time limit.
COLD_SETUP_TIMEOUT = 600


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if chroot_ready():
        return
    for item in items:
        if HERE in Path(item.path).parents and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(COLD_SETUP_TIMEOUT))


@pytest.fixture(scope="session")
def asterisk() -> Iterator[Asterisk]:
    with ExitStack() as stack:
        try:
            stack.enter_context(session_lock())
            pbx = Asterisk.launch()
        except AsteriskUnavailable as error:
            if REQUIRED:
                pytest.fail(f"a real Asterisk is required (ATIENDE_REQUIRE_ASTERISK=1): {error}")
            pytest.skip(f"no real Asterisk: {error}")
        try:
            yield pbx
        finally:
            if pbx.started_here:
                pbx.stop()


@pytest.fixture(scope="session")
def sipp_ports() -> Ports:
    return Ports()


@pytest.fixture
async def sipp(tmp_path: Path, sipp_ports: Ports) -> AsyncIterator[Sipp]:
    made = Sipp(tmp_path / "sipp", sipp_ports)
    try:
        yield made
    finally:
        await made.close()


@pytest.fixture
async def ari(asterisk: Asterisk) -> AsyncIterator[AriEvents]:
    async with (
        AriClient(asterisk.ari_url, asterisk.ari_username, asterisk.ari_password) as client,
        AriEvents(client) as events,
    ):
        yield events


@pytest.fixture
async def centre(
    app: FastAPI, db: Database, settings: Settings, asterisk: Asterisk
) -> AsyncIterator[Centre]:
    async with running_centre(app, db, settings, asterisk) as made:
        yield made
