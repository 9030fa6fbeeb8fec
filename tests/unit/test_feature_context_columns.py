"""Declarations read the event log's request context (``device``, ``locale``) and a sampled event's ``weight``:
the most used device, a share over locales, an unbiased count of sampled views; the build reads those columns
only when a declaration names one, and a build of some entities gives them the values a full build does."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from feature_repo.build import build, build_prepared
from feature_repo.incremental import BUILD_COLUMNS, build_columns, read_events
from setlist.eventlog import Erased, to_table, write_atomic
from setlist.featureset import DeclarationError, Events, Feature, FeatureSet

DAY0 = pd.Timestamp("2026-03-02 08:00", tz="UTC")

CONTEXT_FEATURES = [
    Feature("user_top_device", "user", Events("top", column="device", types=("play",)), "string", missing=""),
    Feature(
        "user_locale_share",
        "user",
        Events("share", column="locale", types=("play",), categories=("de", "en_US")),
        "float_list",
        missing=None,
    ),
    Feature(
        "user_mobile_share",
        "user",
        Events("share", column="device", types=("play",), categories=("mobile",), windows=(7,)),
        window_suffix=False,
    ),
    Feature("user_views", "user", Events("sum", column="weight", types=("view",))),
    Feature("user_view_events", "user", Events("count", types=("view",))),
    Feature("user_last_locale", "user", Events("last", column="locale"), "string", missing=""),
    Feature(
        "item_locale_share",
        "item",
        Events("share", column="locale", types=("play",), categories=("de", "en_US", "unknown")),
        "float_list",
        missing=None,
    ),
]


def _events(rows: list[tuple[str, str, str, int, str | None, str | None, float | None]]) -> pd.DataFrame:
    """(user, item, type, day, device, locale, weight) rows as the event log stores them."""
    n = len(rows)
    return pd.DataFrame(
        {
            "event_id": [f"e{i:03d}" for i in range(n)],
            "schema_version": 2,
            "user_id": [r[0] for r in rows],
            "session_id": [f"s-{r[0]}-{r[3]}" for r in rows],
            "item_id": [r[1] for r in rows],
            "type": [r[2] for r in rows],
            "timestamp": [DAY0 + pd.Timedelta(days=r[3], minutes=i) for i, r in enumerate(rows)],
            "value": [1.0 if r[2] == "play" else np.nan for r in rows],
            "device": [r[4] for r in rows],
            "locale": [r[5] for r in rows],
            "consent_personalization": True,
            "consent_analytics": True,
            "arm": None,
            "query": None,
            "weight": pd.array([r[6] for r in rows], dtype="Float32"),
        }
    )


#: alice plays on mobile twice and on desktop once (de, de, en_US), then on desktop twice a week later (fr);
#: her views were sampled at 1 in 5 (weight 5) but one of them is stored without a weight (it stands for 1)
LOG = _events(
    [
        ("alice", "i1", "play", 0, "mobile", "de", None),
        ("alice", "i2", "play", 0, "mobile", "de", None),
        ("alice", "i1", "play", 0, "desktop", "en_US", None),
        ("alice", "i3", "view", 0, "tablet", "de", 5.0),
        ("alice", "i3", "view", 0, "tablet", "de", 5.0),
        ("alice", "i3", "view", 0, "tablet", "de", None),
        ("bob", "i1", "play", 0, None, None, None),
        ("bob", "i2", "play", 1, "smart_speaker", "en_US", None),
        ("alice", "i2", "play", 8, "desktop", "fr", None),
        ("alice", "i2", "play", 8, "desktop", "fr", None),
    ]
)
ITEMS = pd.DataFrame({"item_id": ["i1", "i2", "i3"], "genre": ["rock", "jazz", "pop"]})


def _rows(frame: pd.DataFrame, key: str, who: str) -> pd.DataFrame:
    return frame[frame[key] == who].sort_values("event_timestamp").reset_index(drop=True)


def test_declarations_read_the_device_the_locale_and_the_weight_of_events():
    fs = FeatureSet.of(CONTEXT_FEATURES)
    batches = build(LOG.copy(), ITEMS, fs, consent_default=True)
    alice = _rows(batches.user_profile, "user_id", "alice")
    assert list(alice["user_top_device"]) == ["mobile", "desktop"]  # 2 mobile of 3, then 3 desktop of 5
    np.testing.assert_allclose(alice["user_locale_share"][0], [2 / 3, 1 / 3], rtol=1e-6)
    np.testing.assert_allclose(alice["user_locale_share"][1], [2 / 5, 1 / 5], rtol=1e-6)  # fr counts, unlisted
    # a single category is a number: the share of the week's plays on mobile (day 0 has left the window by day 8)
    assert alice["user_mobile_share"].dtype == np.float64
    np.testing.assert_allclose(alice["user_mobile_share"], [2 / 3, 0.0], rtol=1e-6)
    # three sampled views stored stand for 5 + 5 + 1 views: weights summed, not events counted
    assert list(alice["user_views"]) == [11.0, 11.0]
    assert list(alice["user_view_events"]) == [3.0, 3.0]
    assert list(alice["user_last_locale"]) == ["de", "fr"]
    bob = _rows(batches.user_profile, "user_id", "bob")
    # a play without a device is "unknown"'s; a tie goes to the value first in sorted order, whatever else a build sees
    assert list(bob["user_top_device"]) == ["unknown", "smart_speaker"]
    np.testing.assert_allclose(bob["user_locale_share"][1], [0.0, 0.5], rtol=1e-6)
    i1 = _rows(batches.item_stats, "item_id", "i1")
    np.testing.assert_allclose(i1["item_locale_share"][0], [1 / 3, 1 / 3, 1 / 3], rtol=1e-6)


def test_a_build_of_some_entities_gives_them_the_values_of_a_full_build():
    """What an incremental update and a Spark bucket do: the entries of a share over declared categories do not
    depend on the other entities' events."""
    fs = FeatureSet.of(CONTEXT_FEATURES)
    full = build(LOG.copy(), ITEMS, fs, consent_default=True)
    alone = build(LOG[LOG["user_id"] == "bob"].copy(), ITEMS, fs, consent_default=True)
    want = _rows(full.user_profile, "user_id", "bob")
    got = _rows(alone.user_profile, "user_id", "bob")
    for col in ("user_top_device", "user_mobile_share", "user_views", "user_last_locale"):
        assert list(got[col]) == list(want[col]), col
    for g, w in zip(got["user_locale_share"], want["user_locale_share"], strict=True):
        np.testing.assert_array_equal(g, w)


def test_the_build_reads_a_context_column_only_when_a_declaration_names_it(tmp_path):
    log = tmp_path / "events" / "a.parquet"
    write_atomic(to_table(LOG), log)
    assert build_columns(FeatureSet.of([CONTEXT_FEATURES[4]])) == BUILD_COLUMNS  # a count reads no column
    named = FeatureSet.of(CONTEXT_FEATURES[:2])
    assert build_columns(named) == [*BUILD_COLUMNS, "device", "locale"]
    events = read_events([log], Erased(), columns=build_columns(named), prepared=True)
    assert "device" in events.columns and "weight" not in events.columns and "arm" not in events.columns
    assert "device" not in read_events([log], Erased(), prepared=True).columns


@pytest.mark.parametrize(
    ("source", "dtype", "message"),
    [
        (Events("share", column="locale"), "float_list", "a share over 'locale' names its categories"),
        (Events("share", column="device", categories=("mobile", "web")), "float64", "exactly one category"),
        (Events("count", categories=("mobile",)), "float64", "categories are for share and top, not count"),
        (Events("top", column="device", categories=()), "string", "one value or more"),
        (Events("top", column="device", categories="mobile"), "string", "categories must be a tuple of values"),
    ],
)
def test_a_share_over_an_open_context_column_names_its_categories(source, dtype, message):
    with pytest.raises(DeclarationError, match=message):
        FeatureSet.of([Feature("user_x", "user", source, dtype, ranker_input=False)])


def test_an_item_feature_over_a_light_type_is_refused_not_silently_zero():
    with pytest.raises(DeclarationError, match="item statistics count the item event types only"):
        FeatureSet.of([Feature("item_views", "item", Events("sum", column="weight", types=("view",)))])


def test_declarations_without_categories_keep_their_fingerprint(tmp_path, monkeypatch):
    """A field added to ``Events`` must not force every deployment's next materialize into a full rebuild (the
    values are those of the release before it; the built-in pack has a table column with an events fallback)."""
    from feature_repo.declarations import load
    from setlist.settings import Settings

    monkeypatch.delenv("SETLIST_FEATURE_DIRS", raising=False)
    assert FeatureSet.of([Feature("user_plays", "user", Events("count", types=("play",)))]).fingerprint() == (
        "0f2e42b2846ab681"
    )
    assert load(Settings(data_dir=tmp_path / "data")).fingerprint() == "0545c9d18d82cad5"


def test_a_tables_events_fallback_is_checked_as_a_declared_aggregation():
    """A table column's fallback is built where the table has no row: an item fallback over views (always 0)
    or a share over device without categories is refused as it would be declared on its own."""
    from setlist.featureset import Column

    views = Feature(
        "item_views", "item", Column("items", "views", fallback=Events("count", types=("view",))), "int64",
        ranker_input=False,
    )  # fmt: skip
    with pytest.raises(DeclarationError, match="item statistics count the item event types only"):
        FeatureSet.of([views])
    shares = Feature(
        "item_weight_share", "item", Column("items", "x", fallback=Events("share", column="weight")), "float_list",
        ranker_input=False,
    )  # fmt: skip
    with pytest.raises(DeclarationError, match="a share over 'weight' names its categories"):
        FeatureSet.of([shares])


def _on_speaker(c):
    return c.device == "smart_speaker"


def test_a_where_filter_reads_the_context_columns_it_asks_for_and_the_build_reads_only_those(tmp_path):
    from feature_repo.declarations import builtin

    speaker = Feature("user_speaker_plays", "user", Events("count", types=("play",), where=_on_speaker))
    heavy = Feature("user_heavy_views", "user", Events("count", types=("view",), where=lambda c: c.weight > 1))
    fs = FeatureSet.of([speaker, heavy])
    assert build_columns(fs) == [*BUILD_COLUMNS, "device", "weight"]
    # the built-in pack's filter (engaged) reads type and value only: its builds read no context column
    assert build_columns(FeatureSet.of(builtin.FEATURES)) == BUILD_COLUMNS
    log = tmp_path / "events" / "a.parquet"
    write_atomic(to_table(LOG), log)
    events = read_events([log], Erased(), columns=build_columns(fs), prepared=True)
    profile = build_prepared(events, ITEMS, fs, consent_default=True).user_profile
    assert list(_rows(profile, "user_id", "bob")["user_speaker_plays"]) == [0.0, 1.0]
    # alice's two views sampled at 1 in 5 pass, the one stored without a weight (it stands for 1) does not
    assert list(_rows(profile, "user_id", "alice")["user_heavy_views"]) == [2.0, 2.0]


def test_a_filter_whose_columns_cannot_be_told_gets_every_context_column():
    def picky(c):
        return c.value > np.percentile(c.value, 90)  # fails on no events: what else it reads is unknown

    fs = FeatureSet.of([Feature("user_top_plays", "user", Events("count", where=picky))])
    assert build_columns(fs) == [*BUILD_COLUMNS, "device", "locale", "weight"]


def test_a_filter_asking_with_a_default_still_gets_the_column_and_a_misspelt_one_is_named():
    """``getattr(c, "device", None)`` does not hide the column from the probe; a name no event column has is an
    ordinary AttributeError naming it, and the build reads no context column for it."""
    from feature_repo import engine

    def careful(c):
        device = getattr(c, "device", None)
        return np.zeros(len(c.type), bool) if device is None else device == "smart_speaker"

    fs = FeatureSet.of([Feature("user_speaker_plays", "user", Events("count", types=("play",), where=careful))])
    assert build_columns(fs) == [*BUILD_COLUMNS, "device"]
    assert list(
        _rows(build(LOG.copy(), ITEMS, fs, consent_default=True).user_profile, "user_id", "bob")["user_speaker_plays"]
    ) == [0.0, 1.0]
    probe = engine.EventColumns(*(np.array([]) for _ in range(5)))
    with pytest.raises(AttributeError, match="'EventColumns' object has no attribute 'devce'"):
        probe.devce  # noqa: B018 - the attribute read is the test
    # a filter that reads a context column only on some events gets past the probe: the build names the feature
    sometimes = Feature("user_odd", "user", Events("count", where=lambda c: c.locale == "de" if len(c.type) else []))
    fs = FeatureSet.of([sometimes])
    assert build_columns(fs) == BUILD_COLUMNS
    events = LOG[[c for c in LOG.columns if c not in ("device", "locale", "weight")]]
    with pytest.raises(DeclarationError, match=r"^feature 'user_odd': a where= filter reads the events' 'locale'"):
        build(events.copy(), ITEMS, fs, consent_default=True)
