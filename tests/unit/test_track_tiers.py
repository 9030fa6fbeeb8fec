"""Track with tiers and onboarding signals: batch-tier events are sampled, carry their weight and
never reach the session; a search's text is stored only as consent allows, and its genre steers
the session of a user with no history."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from serving.errors import InvalidArgument
from serving.grpc.servicer import from_track
from serving.types import TrackEvent
from setlist.candidate_sources import GLOBAL_COHORT, genre_key
from setlist.pseudonym import pseudonymize
from setlist.querytext import hashed
from setlist.settings import Settings
from tests.fakes.dataplane import GENRES, Dataplane

TIERS = {
    "realtime": ["play", "skip", "like", "add_to_playlist", "not_interested", "search", "feature_use"],
    "batch": {"impression": {"sample": 1.0}, "view": {"sample": 0.2}, "heartbeat": {"sample": 1.0}},
}


@pytest.fixture
def plane(tmp_path: Path) -> Dataplane:
    tiers = tmp_path / "tiers.yaml"
    tiers.write_text(yaml.safe_dump(TIERS))
    return Dataplane.fresh(tmp_path, impressions_enabled=False, tiers_file=tiers)


def event(plane: Dataplane, n: int, etype: str, **kw: object) -> TrackEvent:
    fields: dict = dict(
        event_id=f"{etype}-{n}",
        user_id="newcomer",
        item_id="item-3",
        type=etype,
        timestamp_ms=int(plane.clock() * 1000) - 1000 + n,
        session_id="s1",
        context={"consent_personalization": "true"},
    )
    fields.update(kw)
    return TrackEvent(**fields)


def test_batch_events_are_sampled_weighted_acknowledged_and_kept_out_of_the_session(plane, server):
    views = [event(plane, n, "view", item_id=f"item-{n % 60}") for n in range(1000)]
    result = server.service.track(views)
    assert result.accepted == 1000 and not result.rejected  # the sample is policy, not a rejection
    stored = [r for r in plane.journal.rows if r["type"] == "view"]
    assert 140 <= len(stored) <= 260  # about a fifth
    assert all(r["weight"] == pytest.approx(5.0) for r in stored)
    user = pseudonymize("newcomer", plane.settings.secret_hmac_key())
    assert user not in plane.online.rows.get("session", {})  # no session push for a batch type
    left_out = [args[0] for name, args in plane.metrics.calls if name == "record_sampled_out"]
    assert sum(len(types) for types in left_out) == 1000 - len(stored)
    assert result.sampled_out == 1000 - len(stored)  # the caller is told, too (TrackResponse.sampled_out)
    assert from_track(result, "r1").sampled_out == result.sampled_out
    # a retry of the same events makes the same choice: nothing new is stored
    server.service.track(views)
    assert len([r for r in plane.journal.rows if r["type"] == "view"]) == len(stored)


def test_a_search_without_text_is_rejected_and_with_text_needs_no_item(plane, server):
    with pytest.raises(InvalidArgument, match="missing_query"):
        server.service.track([event(plane, 0, "search", item_id="")])
    result = server.service.track([event(plane, 1, "search", item_id="", query="Jazz please")])
    assert result.accepted == 1


@pytest.mark.parametrize("consent, readable", [("true", True), ("false", False), (None, False)])
def test_search_text_is_stored_in_clear_only_with_analytics_consent(plane, server, consent, readable):
    ctx = {"consent_personalization": "true"} | ({"consent_analytics": consent} if consent else {})
    server.service.track([event(plane, 0, "search", item_id="", query="Jazz BY jane.doe", context=ctx)])
    (row,) = [r for r in plane.journal.rows if r["type"] == "search"]
    assert ("jazz by jane doe" == row["query"]) is readable
    assert "jane" not in str(row["query"]) or readable


def test_a_matched_search_steers_a_new_users_session_and_candidates(plane):
    champion = plane.registry.bundles[("1", "1")]
    index = champion.index
    jazz = GENRES.index("jazz")
    index.terms = {"jazz": jazz, "coltrane": jazz}
    server = plane.build()
    try:
        server.service.track([event(plane, 0, "search", item_id="", query="Coltrane")])
        user = pseudonymize("newcomer", plane.settings.secret_hmac_key())
        _, session = plane.online.rows["session"][user]
        assert session["session_genre"] == "jazz"
    finally:
        server.close()
    # a user with no history and no clicks, but a searched genre: that genre's items join the pool
    index.cohorts[genre_key("jazz")] = np.flatnonzero(index.item_genre == jazz)
    cold = index.generate(None, [], GLOBAL_COHORT, set(), 20)
    steered = index.generate(None, [], GLOBAL_COHORT, set(), 20, genres=("jazz",))
    in_jazz = lambda c: float((index.item_genre[c.idx] == jazz).mean())  # noqa: E731
    assert in_jazz(steered) > in_jazz(cold)
    assert steered.personalized and not cold.personalized


def test_the_search_index_points_terms_at_genres():
    from setlist.search_terms import fit_terms

    catalog = pd.DataFrame(
        {
            "item_id": ["a", "b", "c", "d"],
            "genre": ["jazz", "jazz", "rock", "rock"],
            "artist": ["John Coltrane", "Miles Davis", "Rock Davis", "The Rockers"],
            "genres": ["jazz|bebop", "jazz", "rock", "rock|jazz"],
        }
    )
    terms = fit_terms(catalog, ["jazz", "rock", "unknown"])
    assert terms["coltrane"] == 0 and terms["rockers"] == 1 and terms["bebop"] == 0
    assert terms["jazz"] == 0 and terms["rock"] == 1  # a genre's own name wins over artists' votes
    assert "unknown" not in terms


def test_title_words_point_at_genres_but_common_words_and_numbers_do_not():
    from setlist.search_terms import TITLE_COMMON_MIN, fit_terms

    n = 4 * TITLE_COMMON_MIN  # "the" in every title: common; "nebula" in two sci-fi titles
    catalog = pd.DataFrame(
        {
            "item_id": [f"i{k}" for k in range(n)],
            "genre": ["sci-fi" if k < 2 else "drama" for k in range(n)],
            "artist": ["unknown"] * n,
            "title": ["The Nebula (1999)", "The Nebula Returns 2"] + [f"The Story {k}" for k in range(2, n)],
        }
    )
    terms = fit_terms(catalog, ["drama", "sci-fi", "unknown"])
    assert terms["nebula"] == 1 and terms["returns"] == 1
    assert "the" not in terms and "story" not in terms  # in every title, or nearly: no signal
    assert "1999" not in terms and "2" not in terms


# --- the same search, offline: the feature build's sessions read it as Track did -------------------
def _catalog() -> pd.DataFrame:
    from tests.fakes.dataplane import fake_index

    index = fake_index(Settings(hmac_key="test-hmac-key"))  # a key of its own: none written under var/
    genres = [GENRES[g] for g in index.item_genre]
    artists = ["John Coltrane" if g == "jazz" else f"Band {k}" for k, g in enumerate(genres)]
    return pd.DataFrame({"item_id": index.item_ids.astype(str), "genre": genres, "artist": artists})


def test_offline_sessions_read_a_stored_search_as_track_read_it_live(plane):
    from feature_repo.build import Catalog, build_sessions
    from setlist.search_terms import fit_terms

    catalog = _catalog()
    plane.registry.bundles[("1", "1")].index.terms = fit_terms(catalog, GENRES)  # what training builds
    searches = {  # user → (analytics consent, query)
        "clear": ("true", "Coltrane live"),
        "hashed": ("false", "COLTRANE"),
        "unknown": (None, "coltrane"),  # consent unknown: stored hashed too
        "nothing": ("true", "xyzzy"),
    }
    server = plane.build()
    try:
        for n, (user, (analytics, query)) in enumerate(searches.items()):
            ctx = {"consent_personalization": "true"} | ({"consent_analytics": analytics} if analytics else {})
            server.service.track([event(plane, n, "search", user_id=user, item_id="", query=query, context=ctx)])
    finally:
        server.close()
    key = plane.settings.secret_hmac_key()
    online = {user: plane.online.rows["session"][pseudonymize(user, key)][1]["session_genre"] for user in searches}
    assert online == {"clear": "jazz", "hashed": "jazz", "unknown": "jazz", "nothing": ""}

    stored = pd.DataFrame(plane.journal.rows)
    assert stored["query"].str.startswith("#").sum() == 2  # two of the four were stored as keyed hashes
    offline = build_sessions(stored, Catalog.of(catalog).item_genre, Catalog.of(catalog, key).search_genre)
    by_user = offline.groupby("user_id")["session_genre"].last()
    assert {user: by_user[pseudonymize(user, key)] for user in searches} == online
    # without the key the hashed searches match nothing (fail closed), the clear one still does
    unkeyed = build_sessions(stored, Catalog.of(catalog).item_genre, Catalog.of(catalog).search_genre)
    assert unkeyed.groupby("user_id")["session_genre"].last()[pseudonymize("hashed", key)] == ""
    assert unkeyed.groupby("user_id")["session_genre"].last()[pseudonymize("clear", key)] == "jazz"


def test_a_search_picks_the_genre_most_of_its_terms_point_at_the_earlier_breaking_a_tie():
    from setlist.search_terms import SearchGenres

    search = SearchGenres({"jazz": 0, "coltrane": 0, "rock": 1, "punk": 1, "stones": 1}, ["jazz", "rock"], b"k")
    assert search("rock jazz") == "rock" and search("jazz rock") == "jazz"
    assert search("jazz punk stones") == "rock"
    assert search("nothing here") == "" and search(None) == "" and search("") == ""
    hashed_query = " ".join(hashed(t, b"k") for t in ("coltrane", "xyz"))
    assert search(hashed_query) == "jazz"
    assert SearchGenres({"coltrane": 0}, ["jazz"], b"other key")(hashed_query) == ""


def test_a_search_sent_with_an_item_takes_its_genre_from_the_query_as_the_offline_build_does(plane):
    from feature_repo.build import Catalog, build_sessions
    from setlist.search_terms import fit_terms

    catalog = _catalog()
    plane.registry.bundles[("1", "1")].index.terms = fit_terms(catalog, GENRES)
    other = catalog.loc[catalog["genre"] != "jazz", "item_id"].iloc[0]  # an item of another genre
    server = plane.build()
    try:
        server.service.track([event(plane, 0, "search", item_id=other, query="Coltrane")])
    finally:
        server.close()
    user = pseudonymize("newcomer", plane.settings.secret_hmac_key())
    assert plane.online.rows["session"][user][1]["session_genre"] == "jazz"
    offline = build_sessions(
        pd.DataFrame(plane.journal.rows),
        Catalog.of(catalog).item_genre,
        Catalog.of(catalog, plane.settings.secret_hmac_key()).search_genre,
    )
    assert offline.groupby("user_id")["session_genre"].last()[user] == "jazz"
