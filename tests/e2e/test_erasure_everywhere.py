"""Erasure reaches every copy. A user is created the way an app creates one — through Rank and
Track — their events are published and trained on; after ``erase`` a scan of every file under the
data directory (parquet as data, everything else as bytes, NumPy's UTF-32 strings included), every
SQL table, Redis and the MLflow artifacts finds neither their raw id nor their pseudonym."""

from __future__ import annotations

import time

import pytest

from ingest.erasure import erase
from ingest.residue import render, scan
from serving.bootstrap import build
from serving.types import RankQuery, TrackEvent
from setlist.pseudonym import pseudonymize
from setlist.settings import Settings
from tests.world import SEED, build_world

RAW = "erase-me-4711"
# a user who consented, so their data reaches every copy there is (production denies without a flag)
CONSENTED = {"consent_personalization": "true", "consent_analytics": "true"}


def _live_user(settings: Settings) -> dict[str, str]:
    """Rank, Track 40 plays, Rank again; publish and train on it. Returns the scan's needles."""
    from feature_repo.materialize import publish
    from training.run import train

    server = build(settings)
    try:
        server.rank(RankQuery(RAW, 5, context={"device": "mobile"}))
        now = int(time.time() * 1000)
        events = [
            TrackEvent(f"erase-{n}", RAW, f"track_{n % 20 + 1:06d}", "play", now - 60_000 * n, "s1", CONSENTED, 0.9)
            for n in range(40)
        ]
        assert server.track(events).accepted == 40
        server.rank(RankQuery(RAW, 5))
    finally:
        server.close()
    publish(settings)
    train(settings, progress=False)
    return {"raw id": RAW, "pseudonym": pseudonymize(RAW, settings.secret_hmac_key())}


def _erase_and_scan(settings: Settings) -> None:
    needles = _live_user(settings)
    before = scan(settings, needles)
    # the copies the issue lists are really there before, so an empty scan after means something
    places = render(before, [])
    for where in ("events", "features/user_profile.parquet", "features/consent.parquet", "impressions", "arrays.npz"):
        assert where in places, f"expected the user in {where} before erasure:\n{places}"
    receipt = erase(RAW, settings)
    assert receipt.removed_in("candidate models' user factors") >= 1
    assert receipt.removed_in("online store") >= 1  # the views that held a row of the user
    notes: list[str] = []
    after = scan(settings, needles, notes)
    assert after == [], render(after, notes)


def test_erasure_leaves_nothing_in_the_local_profile(tiny_copy) -> None:
    settings = tiny_copy.settings.model_copy(update={"impressions_enabled": True, "impressions_flush_s": 0.2})
    _erase_and_scan(settings)
    # a receipt counts what was there: a user the store never held had no row in any view
    assert erase("someone-never-seen", settings).removed_in("online store") == 0


@pytest.fixture
def production_world(production_settings):
    settings = production_settings.model_copy(
        update={
            "scale": "tiny",
            "seed": SEED,
            "reload_interval_s": 3600,
            "cache_backend": "redis",
            "impressions_enabled": True,
            "impressions_flush_s": 0.2,
        }
    )
    return build_world(settings.data_dir, settings)


def test_erasure_leaves_nothing_in_the_production_profile(production_world) -> None:
    _erase_and_scan(production_world.settings)
