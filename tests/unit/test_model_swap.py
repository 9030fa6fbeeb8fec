"""Load-before-swap in serving.rollout.models.ModelHolder, with the MLflow side faked through its
``loader`` and ``versions`` parameters: a new pair is loaded while the old one serves, swapped in
one assignment, and a pair that fails to load never replaces the one serving."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from serving.bootstrap import Server
from serving.rollout.models import ModelBundle
from serving.types import RankQuery
from setlist.settings import Settings
from tests.fakes.dataplane import Dataplane

OLD, NEW = ("1", "1"), ("2", "2")
WAIT = 10.0


@pytest.fixture
def plane(tmp_path: Path) -> Dataplane:
    return Dataplane.fresh(tmp_path, impressions_enabled=False, reload_interval_s=3600)


def refresh_in_background(target: object) -> tuple[threading.Thread, list[bool]]:
    out: list[bool] = []
    t = threading.Thread(target=lambda: out.append(target.refresh()))
    t.start()
    return t, out


def test_a_new_pair_is_loaded_while_the_old_one_serves_then_swapped(plane: Dataplane) -> None:
    holder = plane.registry.holder()
    assert holder.refresh() and holder.current is plane.registry.bundles[OLD]
    plane.registry.add(NEW, seed=1)
    plane.registry.gates[NEW] = threading.Event()
    t, changed = refresh_in_background(holder)
    assert plane.registry.loading.wait(WAIT)
    assert holder.current is plane.registry.bundles[OLD]  # mid-load: the old pair still serves
    plane.registry.gates[NEW].set()
    t.join(WAIT)
    assert changed == [True] and holder.current is plane.registry.bundles[NEW]


def test_a_pair_that_fails_to_load_leaves_the_old_one_serving(plane: Dataplane) -> None:
    holder = plane.registry.holder()
    holder.refresh()
    plane.registry.add(NEW, seed=1)
    plane.registry.broken.add(NEW)
    assert holder.refresh() is False
    assert holder.current is plane.registry.bundles[OLD]
    loads = len(plane.registry.loads)
    assert holder.refresh() is False  # refused once, not reloaded every refresh
    assert len(plane.registry.loads) == loads and holder.current.pair == OLD


def test_the_registry_being_down_keeps_the_models(plane: Dataplane) -> None:
    holder = plane.registry.holder()
    holder.refresh()
    plane.registry.aliases.clear()  # every alias lookup fails
    assert holder.refresh() is False and holder.current.pair == OLD


def test_readers_never_see_a_half_swapped_set(plane: Dataplane) -> None:
    """Two aliases move together; a reader sees both old or both new, never one of each."""
    registry = plane.registry
    registry.add(("1", "9"), seed=2, alias="challenger")
    holder = registry.holder(aliases=("champion", "challenger"))
    holder.refresh()
    old = {a: b.pair for a, b in holder.bundles.items()}
    registry.add(NEW, seed=1)
    registry.add(("2", "9"), seed=3, alias="challenger")
    registry.gates[("2", "9")] = threading.Event()  # the second load is held mid-refresh
    new = dict(registry.aliases)
    seen: set[tuple[tuple[str, tuple[str, str]], ...]] = set()  # distinct snapshots, so it stays small
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            snapshot: dict[str, ModelBundle] = holder.bundles
            seen.add(tuple(sorted((a, b.pair) for a, b in snapshot.items())))

    reader = threading.Thread(target=read)
    reader.start()
    t, changed = refresh_in_background(holder)
    assert registry.loading.wait(WAIT)  # champion loaded, challenger loading
    assert {a: b.pair for a, b in holder.bundles.items()} == old
    registry.gates[("2", "9")].set()
    t.join(WAIT)
    stop.set()
    reader.join(WAIT)
    assert changed == [True] and {a: b.pair for a, b in holder.bundles.items()} == new
    assert seen and seen <= {tuple(sorted(old.items())), tuple(sorted(new.items()))}


def test_rank_serves_the_old_pair_until_the_new_one_is_loaded(plane: Dataplane, server: Server) -> None:
    """The same through bootstrap's Server: requests during a slow load are answered by the old pair."""
    old_version = plane.registry.bundles[OLD].version
    assert server.rank(RankQuery("user-1", 5)).model_version == old_version
    new_version = plane.registry.add(NEW, seed=1).version
    plane.registry.gates[NEW] = threading.Event()
    t, changed = refresh_in_background(server)
    assert plane.registry.loading.wait(WAIT)
    assert server.rank(RankQuery("user-2", 5)).model_version == old_version
    plane.registry.gates[NEW].set()
    t.join(WAIT)
    assert changed == [True]
    after = server.rank(RankQuery("user-1", 5))
    assert after.model_version == new_version and not after.cache_hit  # the swap dropped cached rankings
    assert ("set_model_version", (plane.settings.ranker_model, NEW[1])) in plane.metrics.calls


def test_a_broken_new_pair_never_reaches_a_request(plane: Dataplane, server: Server) -> None:
    before = server.rank(RankQuery("user-1", 5))
    plane.registry.add(NEW, seed=1)
    plane.registry.broken.add(NEW)
    assert server.refresh() is False
    after = server.rank(RankQuery("user-1", 5))
    assert after.model_version == before.model_version and after.items == before.items


def test_an_unset_champion_is_said_once_in_words_until_it_is_set_and_unset_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    from serving.rollout.models import ModelHolder

    versions = _alias_answers([None, None, ("1", "1"), None])

    def bundle(_settings: Settings, pair: tuple[str, str]) -> ModelBundle:
        return ModelBundle(index=None, booster=None, candidates_version=pair[0], ranker_version=pair[1])  # type: ignore[arg-type]

    holder = ModelHolder(Settings(data_dir=tmp_path), loader=bundle, versions=versions)
    said = []
    with caplog.at_level(logging.WARNING, logger="setlist.serving.rollout.models"):
        for _ in range(4):
            holder.refresh()
            said.append(sum("no champion model in the registry yet" in r.getMessage() for r in caplog.records))
    assert said == [1, 1, 1, 2]  # once; then again only after it was set and went away
    assert "python -m training.promote" in caplog.records[0].getMessage()
    assert holder.current is not None  # the last refresh keeps what it had


def test_a_server_with_no_champion_says_why_rather_than_still_loading(tmp_path: Path) -> None:
    from serving.rollout.models import ModelHolder, ModelLoadError

    versions = _alias_answers([None, ("1", "1"), ("1", "1"), ("2", "2")])

    def bundle(_settings: Settings, pair: tuple[str, str]) -> ModelBundle:
        if pair == ("1", "1"):
            raise ModelLoadError("its feature service ranker_v1 was redeclared with other inputs")
        return ModelBundle(index=None, booster=None, candidates_version=pair[0], ranker_version=pair[1])  # type: ignore[arg-type]

    holder = ModelHolder(Settings(data_dir=tmp_path), loader=bundle, versions=versions)
    holder.refresh()
    assert holder.waiting_for is not None and "no champion model in the registry yet" in holder.waiting_for
    # a first make train that kept its model as challenger: the client is told how to serve it anyway
    assert "python -m training.promote --reason" in holder.waiting_for
    holder.refresh()
    assert (
        holder.waiting_for
        == "the champion ('1', '1') was refused: its feature service ranker_v1 was redeclared with other inputs"
    )
    holder.refresh()  # the same pair again: still the first reason, not "refused earlier"
    assert holder.waiting_for.endswith("was redeclared with other inputs")
    holder.refresh()
    assert holder.current is not None and holder.waiting_for is None


def _alias_answers(answers: list[tuple[str, str] | None]) -> Callable[[Settings, str], tuple[str, str]]:
    """A registry whose alias lookups answer these pairs in turn; None: the alias is not set."""
    from setlist.registry import AliasNotSet

    def versions(_settings: Settings, alias: str) -> tuple[str, str]:
        pair = answers.pop(0)
        if pair is None:
            raise AliasNotSet(f"registered model 'setlist-ranker' has no {alias!r} version")
        return pair

    return versions
