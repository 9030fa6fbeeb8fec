"""Track's bounded input: each bad event is rejected alone with a short reason, the quarantine is
written in batches, and what Track keeps in memory is bounded."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest

from serving import tracking
from serving.bootstrap import Server
from serving.errors import InvalidArgument
from serving.tracking import LruSet, Tracker, excerpt
from serving.types import TrackEvent
from setlist.contract import reject_reason
from setlist.eventlog import Quarantine
from setlist.settings import Settings
from tests.fakes.dataplane import Dataplane, FakeIdentities, FakeJournal

DAY_MS = 86_400_000


@pytest.fixture
def plane(tmp_path: Path) -> Dataplane:
    return Dataplane.fresh(tmp_path, impressions_enabled=False)


def play(plane: Dataplane, event_id: str, **kw: object) -> TrackEvent:
    fields: dict = dict(
        event_id=event_id, user_id="user-0", item_id="item-3", type="play", timestamp_ms=int(plane.clock() * 1000)
    )
    fields.update(kw)
    return TrackEvent(**fields)


def hostile(plane: Dataplane) -> list[TrackEvent]:
    now_ms = int(plane.clock() * 1000)
    return [
        play(plane, "old", timestamp_ms=now_ms - 8 * DAY_MS),
        play(plane, "far", timestamp_ms=10**15),
        play(plane, "keys", context={f"k{n}": "v" for n in range(1000)}),
        play(plane, "big", context={"device": "x" * 3_000_000}),
        play(plane, "long-user", user_id="u" * 10_000),
        play(plane, "t" * 5000),
        play(plane, "long-type", type="p" * 5000),
        play(plane, "inf-skip", type="skip", value=float("inf")),
        play(plane, "minus-inf-like", type="like", value=float("-inf")),
    ]


def test_each_hostile_event_is_rejected_alone_with_a_short_reason(plane: Dataplane, server: Server) -> None:
    result = server.track([play(plane, "good"), *hostile(plane)])
    assert result.accepted == 1 and [r["event_id"] for r in plane.journal.rows] == ["good"]
    reasons = {r.event_id: r.reason for r in result.rejected}
    assert reasons["old"].startswith("stale_timestamp")
    assert reasons["far"].startswith("bad_timestamp") and "beyond the representable range" in reasons["far"]
    assert reasons["keys"].startswith("bad_context: 1000 keys")
    assert reasons["big"].startswith("bad_context") and "3000000 characters" in reasons["big"]
    assert reasons["long-user"].startswith("too_long: user_id")
    assert reasons["long-type"].startswith("too_long: type")
    assert reasons["inf-skip"] == "bad_value: inf is not a finite number"
    assert reasons["minus-inf-like"] == "bad_value: -inf is not a finite number"
    assert excerpt("t" * 5000) in reasons  # an id too long is echoed cut
    assert all(len(r.reason) <= 200 and len(r.event_id) <= 256 for r in result.rejected)


def test_a_batch_of_hostile_events_only_is_invalid_argument_quoting_little(plane: Dataplane, server: Server) -> None:
    for event in hostile(plane):
        with pytest.raises(InvalidArgument) as err:
            server.track([event])
        assert len(str(err.value)) < 1000  # not the 3 MB, not 5000 characters of id
    assert plane.journal.rows == []


def test_the_age_limit_is_tracks_only_the_importer_keeps_history(plane: Dataplane, server: Server) -> None:
    year_ms = 365 * DAY_MS
    old = play(plane, "last-year", timestamp_ms=int(plane.clock() * 1000) - year_ms)
    with pytest.raises(InvalidArgument, match="stale_timestamp"):
        server.track([old])
    row = server.service.tracker.row(old, "pseudonym")
    assert reject_reason(row, pd.Timestamp(plane.clock(), unit="s", tz="UTC").to_pydatetime()) is None


def test_the_age_limit_is_a_setting(tmp_path: Path) -> None:
    from feature_repo.declarations import load

    settings = Settings(data_dir=tmp_path / "data", hmac_key="k", impressions_enabled=False, track_max_age_days=30)
    plane = Dataplane(settings, load(settings))
    server = plane.build()
    try:
        assert server.track([play(plane, "old", timestamp_ms=int(plane.clock() * 1000) - 8 * DAY_MS)]).accepted == 1
    finally:
        server.close()


def test_excerpt_cuts_with_an_ellipsis() -> None:
    assert excerpt("short") == "short"
    cut = excerpt("x" * 1000)
    assert len(cut) == 100 and cut.endswith("…")


def test_track_writes_the_quarantine_in_batches_and_loses_nothing_at_close(plane: Dataplane) -> None:
    server = plane.build()
    quarantine = Quarantine(plane.settings.quarantine_dir)
    for n in range(20):
        server.track([play(plane, f"good-{n}"), play(plane, f"bad-{n}", type="dance")])
    assert list(quarantine.root.glob("*.parquet")) == []  # no parquet file (and no fsync) per request
    assert len(quarantine.read()) == 20  # yet every rejected row is readable already
    server.close()
    files = list(quarantine.root.glob("*.parquet"))
    assert len(files) == 1 and not list(quarantine.root.glob("pending-*"))
    got = quarantine.read()
    assert sorted(got["event_id"]) == sorted(f"bad-{n}" for n in range(20))
    assert got["reason"].str.startswith("unknown_type").all() and (got["source"] == "track").all()


def test_the_quarantine_buffer_writes_a_file_per_batch(tmp_path: Path) -> None:
    quarantine = Quarantine(tmp_path / "q")
    buffer = quarantine.buffered(max_rows=3, flush_s=3600)
    row = pd.DataFrame([{"event_id": "e", "timestamp": "t", "type": "dance"}])
    for _ in range(7):
        buffer.put(row, ["why"], "track")
    assert len(list(quarantine.root.glob("*.parquet"))) == 2  # at 3 and 6 rows
    buffer.close()
    assert len(list(quarantine.root.glob("*.parquet"))) == 3 and len(quarantine.read()) == 7


def test_a_dead_processs_pending_rows_are_adopted(tmp_path: Path) -> None:
    quarantine = Quarantine(tmp_path / "q")
    quarantine.root.mkdir(parents=True)
    orphan = quarantine.root / f"pending-{os.getpid() + 1}-dead.jsonl"
    orphan.write_text(json.dumps({"event_id": "lost?", "reason": "r", "source": "track"}) + "\n")
    assert list(quarantine.read()["event_id"]) == ["lost?"]  # readable while pending
    live = quarantine.buffered(max_rows=10, flush_s=3600)
    assert not orphan.exists() and list(quarantine.read()["event_id"]) == ["lost?"]
    other = quarantine.buffered(max_rows=10, flush_s=3600)  # the live buffer's file is locked, not adopted
    assert live.path.exists()
    other.close()
    live.close()


def test_lru_set_forgets_the_least_recently_used() -> None:
    known = LruSet(2)
    known.add("a")
    known.add("b")
    assert known.touch("a")
    known.add("c")
    assert (known.touch("a"), known.touch("b"), known.touch("c"), len(known)) == (True, False, True, 2)


def test_the_known_identities_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tracking, "KNOWN_USERS", 3)
    identities = FakeIdentities()
    tracker = Tracker(FakeJournal(), None, Quarantine(tmp_path / "q"), identities, clock=lambda: 1_793_534_400.0)
    try:
        for n in range(10):
            event = TrackEvent(f"e{n}", f"user-{n}", "item-1", "play", 1_793_534_400_000)
            assert tracker.track([event], None, lambda u: f"p-{u}").accepted == 1
        assert len(tracker._known) == 3 and len(identities.known) == 10
    finally:
        tracker.close()


def test_a_tracked_context_is_bounded_as_a_rank_request_is(plane: Dataplane, server: Server) -> None:
    # stored as Rank reads a request's context, so training's cohorts are the cohorts requests name
    tracker = server.service.tracker
    kept = tracker.row(play(plane, "a", context={"device": "mobile", "locale": "en_US"}), "p")
    assert (kept["device"], kept["locale"]) == ("mobile", "en_US")
    odd = tracker.row(play(plane, "b", context={"device": "iPhone 15", "locale": "Deutsch!"}), "p")
    assert (odd["device"], odd["locale"]) == ("other", "other")
    none = tracker.row(play(plane, "c"), "p")
    assert (none["device"], none["locale"]) == ("unknown", "unknown")
    assert server.service._vocabulary.context({"device": "iPhone 15", "locale": "Deutsch!"}) == ("other", "other")


def test_each_rejection_names_its_events_position_so_events_without_a_usable_id_are_told_apart(
    plane: Dataplane, server: Server
) -> None:
    now_ms = int(plane.clock() * 1000)
    batch = [
        play(plane, ""),
        play(plane, "twice"),
        play(plane, ""),
        play(plane, "twice"),
        play(plane, "twice"),
        play(plane, "ok"),
    ]
    result = server.track(batch)
    assert result.accepted == 2  # the first "twice" and "ok"
    assert [(r.index, r.event_id, r.reason.split(":")[0]) for r in result.rejected] == [
        (0, "", "missing_id"),
        (2, "", "missing_id"),
        (3, "twice", "duplicate_event_id"),
        (4, "twice", "duplicate_event_id"),
    ]
    with pytest.raises(InvalidArgument) as err:
        server.track([play(plane, "late", timestamp_ms=now_ms + 3_600_000) for _ in range(7)])
    message = str(err.value)
    assert "#0 late: future_timestamp" in message and "and 2 more" in message
    assert "Known types" not in message  # nothing here was about the type
    with pytest.raises(InvalidArgument, match="Known types: play"):
        server.track([play(plane, "odd", type="teleport")])


def test_an_id_with_surrounding_spaces_is_the_same_user_as_without(plane: Dataplane, server: Server) -> None:
    """Every boundary takes an app id without surrounding whitespace (setlist.pseudonym.app_id), as imports
    do: " user-0\\t" is user-0 to Track, to the identity map and to Rank's pseudonym, whose erasure reaches it."""
    result = server.track([play(plane, "padded", user_id=" user-0\t"), play(plane, "plain", user_id="user-0")])
    assert result.accepted == 2
    (user,) = {r["user_id"] for r in plane.journal.rows}
    assert user == server.service.pseudonym("user-0") == server.service.pseudonym("  user-0 ")
    assert plane.identities.known == {user: "user-0"}


def test_a_user_ids_padding_does_not_count_against_its_length_limit(plane: Dataplane, server: Server) -> None:
    """The id is kept without the spaces around it (``app_id``), so it is measured so too: an id of the
    longest length allowed, padded, is taken by Track and Rank; one character more is refused by both."""
    from serving.types import RankQuery

    longest = "u" * Settings().max_user_id_len  # the default the fixture serves with
    padded = f"  {longest}\t"
    assert server.track([play(plane, "padded", user_id=padded)]).accepted == 1
    assert len(server.rank(RankQuery(padded, 3)).items) == 3
    too_long = f" {longest}u "
    with pytest.raises(InvalidArgument, match=rf"user_id is {len(longest) + 1} characters"):
        server.track([play(plane, "too-long", user_id=too_long)])
    with pytest.raises(InvalidArgument, match=rf"user_id is {len(longest) + 1} characters"):
        server.rank(RankQuery(too_long, 3))
