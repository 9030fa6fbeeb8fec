"""Track against clients whose clocks disagree with the server's: an event stamped ahead (within the
allowed skew) is stored at the time it was received, and a late event still reaches the live session."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from serving.bootstrap import Server
from serving.types import TrackEvent
from setlist.pseudonym import pseudonymize
from tests.fakes.dataplane import Dataplane


@pytest.fixture
def plane(tmp_path: Path) -> Dataplane:
    return Dataplane.fresh(tmp_path, impressions_enabled=False)


def play(plane: Dataplane, n: int, offset_s: float, etype: str = "play") -> TrackEvent:
    return TrackEvent(
        f"e{n}",
        "listener",
        f"item-{n}",
        etype,
        int((plane.clock() + offset_s) * 1000),
        "s1",
        {"consent_personalization": "true"},
        0.9,
    )


def session(plane: Dataplane) -> tuple[datetime, dict]:
    return plane.online.rows["session"][pseudonymize("listener", plane.settings.secret_hmac_key())]


def test_an_event_stamped_ahead_of_the_server_is_stored_at_its_receipt(plane: Dataplane, server: Server) -> None:
    ahead = plane.settings.max_future_skew_s - 60
    assert ahead > 0
    assert server.service.track([play(plane, 0, ahead)]).accepted == 1
    (row,) = plane.journal.rows
    assert row["timestamp"] == int(plane.clock() * 1000)  # not the client's, which is later than now
    # the next event, stamped by a right clock, still reaches the session
    plane.clock.advance(5)
    assert server.service.track([play(plane, 1, 0)]).accepted == 1
    _, features = session(plane)
    assert features["session_length"] == 2 and "item-1" in features["session_last_items"]


def test_a_late_event_is_folded_into_the_session_it_missed(plane: Dataplane, server: Server) -> None:
    server.service.track([play(plane, 0, 0)])
    written, _ = session(plane)
    # another device of the same user, its clock 90 s behind
    server.service.track([play(plane, 1, -90)])
    again, features = session(plane)
    assert features["session_length"] == 2 and "item-1" in features["session_last_items"]
    assert again > written  # newer than the row it was built on, so it replaced it
