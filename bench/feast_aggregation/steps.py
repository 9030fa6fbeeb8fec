"""The measured steps. Each runs alone in a child process so its peak RSS is its own:

    python -m bench.feast_aggregation.steps STEP SIZE ROWS RESULT_JSON

Loading the events (and applying Feast objects) happens before the timer starts; ``seconds`` is
the timed part, ``peak_rss_mb`` the process's ``ru_maxrss`` at the end (load included: what a job
doing this would need), ``load_rss_mb`` the peak before the timed part. Outputs that the
correctness step compares go to var/feast_aggregation/<size>/.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from feast.infra.common.materialization_job import MaterializationTask
from feast.infra.common.retrieval_task import HistoricalRetrievalTask

from bench.feast_aggregation import data, repo
from feature_repo.build import Catalog, as_of, build_item_stats, build_user_profile, prepare

ONLINE_SAMPLE = 5_000  # entities read back from the online store (outside the timer) to check values


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


@dataclass
class Ctx:
    size: str
    rows: int
    out: dict = field(default_factory=dict)

    @property
    def work(self) -> Path:
        return data.VAR / self.size

    def events(self) -> pd.DataFrame:
        return pd.read_parquet(data.events_path(self.size))

    def label_rows(self, events: pd.DataFrame) -> pd.DataFrame:
        rows = data.entity_rows(events, self.rows)
        rows["row"] = range(len(rows))  # extra columns pass through Feast's join: a key to match on
        return rows

    @contextmanager
    def timed(self) -> Iterator[None]:
        self.out["load_rss_mb"] = _rss_mb()
        start = time.perf_counter()
        yield
        self.out["seconds"] = time.perf_counter() - start


def _online(store, features: list[str], key: str, ids: list[str]) -> pd.DataFrame:
    return store.get_online_features(features=features, entity_rows=[{key: i} for i in ids]).to_df()


def _sample_ids(events: pd.DataFrame, key: str) -> list[str]:
    ids = pd.Series(events[key].unique())
    return sorted(ids.sample(min(ONLINE_SAMPLE, len(ids)), random_state=3))


# --- our engine ------------------------------------------------------------------------------
def ours_build(ctx: Ctx) -> None:
    """prepare + build_user_profile + build_item_stats on the whole log."""
    ev, items = ctx.events(), pd.read_parquet(data.items_path(ctx.size))
    raw = ev.rename(columns={"event_timestamp": "timestamp"})
    with ctx.timed():
        prepared = prepare(raw)
        catalog = Catalog.of(items)
        users, item_stats = build_user_profile(prepared, catalog), build_item_stats(prepared, catalog)
    ctx.work.mkdir(parents=True, exist_ok=True)
    users[["user_id", "event_timestamp", "user_plays_7d", "user_plays_30d", "user_skip_rate_30d"]].to_parquet(
        ctx.work / "user_profile.parquet", index=False
    )
    item_stats[["item_id", "event_timestamp", "item_plays_30d", "item_skip_rate_30d"]].to_parquet(
        ctx.work / "item_stats.parquet", index=False
    )
    ctx.out.update(user_rows=len(users), item_rows=len(item_stats), as_of=str(as_of(prepared)))


def _builder_store(ctx: Ctx, name: str):
    store = repo.open_store(ctx.work / name)
    store.apply(
        [repo.user, repo.item, *repo.builder_views(ctx.work / "user_profile.parquet", ctx.work / "item_stats.parquet")]
    )
    return store


OUR_FEATURES = [
    "user_profile:user_plays_7d",
    "user_profile:user_plays_30d",
    "user_profile:user_skip_rate_30d",
    "item_stats:item_plays_30d",
    "item_stats:item_skip_rate_30d",
]


def ours_hist(ctx: Ctx) -> None:
    """Feast's point-in-time join (file offline store) of our snapshots for ROWS label rows."""
    ev = ctx.events()
    rows = ctx.label_rows(ev)
    store = _builder_store(ctx, "repo_ours_hist")
    with ctx.timed():
        got = store.get_historical_features(rows, OUR_FEATURES).to_df()
    got.to_parquet(ctx.work / "ours_hist.parquet", index=False)
    ctx.out.update(rows_out=len(got))


def ours_materialize(ctx: Ctx) -> None:
    """``store.materialize`` of our snapshots (all of them) into SQLite: each entity's latest row."""
    ev = ctx.events()
    end = ev["event_timestamp"].max().floor("D") + pd.Timedelta(days=1)
    start = ev["event_timestamp"].min().floor("D")
    store = _builder_store(ctx, "repo_ours_mat")
    with ctx.timed():
        store.materialize(start.to_pydatetime(), end.to_pydatetime())
    users = _online(store, OUR_FEATURES[:3], "user_id", _sample_ids(ev, "user_id"))
    items = _online(store, OUR_FEATURES[3:], "item_id", _sample_ids(ev, "item_id"))
    users.to_parquet(ctx.work / "ours_online_users.parquet", index=False)
    items.to_parquet(ctx.work / "ours_online_items.parquet", index=False)
    ctx.out.update(end=str(end))


# --- Feast's aggregation path ------------------------------------------------------------------
def _event_store(ctx: Ctx, name: str, views: list):
    store = repo.open_store(ctx.work / name)
    store.apply([repo.user, repo.item, *views])
    return store, store._get_provider().batch_engine


def feast_hist(ctx: Ctx) -> None:
    """LocalComputeEngine.get_historical_features with the aggregations the engine accepts (no
    time_window, ttl 30 days), called directly: FeatureStore.get_historical_features never
    reaches the engine, and the registry copy has lost the aggregations (see capabilities)."""
    ev = ctx.events()
    rows = ctx.label_rows(ev)
    src = repo.event_source(data.events_path(ctx.size))
    views = {
        "user_id": repo.unwindowed_view(src, repo.user, "user"),
        "item_id": repo.unwindowed_view(src, repo.item, "item"),
    }
    store, engine = _event_store(ctx, "repo_feast_hist", list(views.values()))
    got = {}
    with ctx.timed():
        for key, view in views.items():
            task = HistoricalRetrievalTask(
                project=store.project,
                entity_df=rows[[key, "event_timestamp"]],
                feature_view=view,
                full_feature_name=False,
                registry=store.registry,
            )
            got[key] = engine.get_historical_features(store.registry, task).to_df()
    for key, frame in got.items():
        frame.to_parquet(ctx.work / f"feast_hist_{key}.parquet", index=False)
    ctx.out.update(
        rows_in=len(rows),
        rows_out={k: len(v) for k, v in got.items()},
        columns_out={k: list(v.columns) for k, v in got.items()},
    )


def feast_materialize(ctx: Ctx) -> None:
    """LocalComputeEngine.materialize of the max(event_timestamp) workaround over [end - 30d, end]."""
    ev = ctx.events()
    end = ev["event_timestamp"].max().floor("D") + pd.Timedelta(days=1)
    src = repo.event_source(data.events_path(ctx.size))
    views = [repo.online_window_view(src, repo.user, "user"), repo.online_window_view(src, repo.item, "item")]
    store, engine = _event_store(ctx, "repo_feast_mat", views)
    with ctx.timed():
        for view in views:
            task = MaterializationTask(
                project=store.project,
                feature_view=view,
                start_time=(end - repo.W30).to_pydatetime(),
                end_time=end.to_pydatetime(),
            )
            job = engine.materialize(store.registry, task)[0]
            if job.error():
                raise job.error()
    users = _online(
        store, ["user_online30d:user_plays_30d", "user_online30d:user_skips_30d"], "user_id", _sample_ids(ev, "user_id")
    )
    items = _online(
        store, ["item_online30d:item_plays_30d", "item_online30d:item_skips_30d"], "item_id", _sample_ids(ev, "item_id")
    )
    users.to_parquet(ctx.work / "feast_online_users.parquet", index=False)
    items.to_parquet(ctx.work / "feast_online_items.parquet", index=False)
    ctx.out.update(end=str(end))


def feast_public_hist(ctx: Ctx) -> None:
    """FeatureStore.get_historical_features on the raw log (a plain view, ``value``, ttl 30 days):
    no aggregate, but the cost of Feast's own point-in-time join over every event."""
    ev = ctx.events()
    rows = ctx.label_rows(ev)
    store = repo.open_store(ctx.work / "repo_feast_public")
    store.apply([repo.user, repo.raw_view(repo.event_source(data.events_path(ctx.size)))])
    with ctx.timed():
        got = store.get_historical_features(rows[["user_id", "event_timestamp", "row"]], ["raw_events:value"]).to_df()
    ctx.out.update(rows_out=len(got))


def prepare_data(ctx: Ctx) -> None:
    with ctx.timed():
        ev_path, _ = data.ensure(ctx.size)
    ev = pd.read_parquet(ev_path)
    ctx.out.update(
        events=len(ev),
        users=int(ev["user_id"].nunique()),
        items=int(ev["item_id"].nunique()),
        first=str(ev["event_timestamp"].min()),
        last=str(ev["event_timestamp"].max()),
        types=ev["type"].value_counts().to_dict(),
    )


def _correctness(ctx: Ctx) -> None:
    from bench.feast_aggregation.correctness import compare

    ctx.out.update(compare(ctx))


def _capabilities(ctx: Ctx) -> None:
    from bench.feast_aggregation.capabilities import probe

    ctx.out.update(probe(ctx))


STEPS: dict[str, Callable[[Ctx], None]] = {
    "prepare": prepare_data,
    "ours_build": ours_build,
    "ours_hist": ours_hist,
    "ours_materialize": ours_materialize,
    "feast_hist": feast_hist,
    "feast_materialize": feast_materialize,
    "feast_public_hist": feast_public_hist,
    "correctness": _correctness,
    "capabilities": _capabilities,
}


def main(argv: list[str]) -> None:
    step, size, rows, result = argv[0], argv[1], int(argv[2]), Path(argv[3])
    ctx = Ctx(size=size, rows=rows)
    STEPS[step](ctx)
    ctx.out["peak_rss_mb"] = _rss_mb()
    result.write_text(json.dumps(ctx.out, default=str))


if __name__ == "__main__":
    main(sys.argv[1:])
