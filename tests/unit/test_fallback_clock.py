"""A challenger on another clock than the champion's: the champion's fallback answer and the cache."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from serving.types import RankQuery
from tests.fakes.dataplane import Dataplane, FakeBooster, user_ids


class _Failing(FakeBooster):
    def inplace_predict(self, X: np.ndarray, **kw) -> np.ndarray:
        raise RuntimeError("a challenger's bug")


def test_a_champion_fallback_is_not_cached_past_the_champions_own_hour(tmp_path: Path) -> None:
    exp = tmp_path / "experiments.yaml"
    exp.write_text(
        "name: x\nsalt: s\ncontrol: champion\narms:\n"
        "  champion: {share: 0.5, strategy: model, alias: champion}\n"
        "  challenger: {share: 0.5, strategy: model, alias: challenger}\n"
    )
    plane = Dataplane.fresh(
        tmp_path, impressions_enabled=False, reload_interval_s=3600, cache_ttl_s=300, experiments_file=exp
    )
    champion = plane.registry.bundles[plane.registry.aliases["champion"]]
    kolkata = timezone(timedelta(hours=5, minutes=30))
    broken = replace(champion, booster=_Failing(champion.booster.feature_names, 1), ranker_version="2", zone=kolkata)
    plane.registry.bundles[("1", "2")] = broken
    plane.registry.aliases["challenger"] = ("1", "2")
    server = plane.build(models=plane.registry.holder(aliases=("champion", "challenger")))
    try:
        assert datetime.fromtimestamp(plane.clock(), UTC).minute == 0
        plane.clock.advance(58 * 60)  # 12:58 UTC: the champion's hour 12, the challenger's 18:28
        first = {u: server.rank(RankQuery(u, 5)) for u in user_ids(10)}
        routed = [u for u, r in first.items() if r.arm == "challenger"]
        assert routed and first[routed[0]].model_version == "candidates:1+ranker:1"  # the champion's fallback
        plane.clock.advance(3 * 60)  # 13:01 UTC, within the TTL: the champion's request hour is 13 now
        again = server.rank(RankQuery(routed[0], 5))
        assert not again.cache_hit  # the entry was ranked with hour 12 by the champion that served it
    finally:
        server.close()
