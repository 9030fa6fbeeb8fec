"""What Feast 0.67 does with each declaration, tried on a small log: every path is run and its
outcome ("ok: …" or "error: …") recorded, so the report quotes behaviour, not documentation."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pandas as pd
from feast import BatchFeatureView, Entity, Field, ValueType
from feast.aggregation import Aggregation
from feast.infra.common.materialization_job import MaterializationTask
from feast.infra.common.retrieval_task import HistoricalRetrievalTask
from feast.types import Float64

from bench.feast_aggregation import brute, data, repo

if TYPE_CHECKING:
    from bench.feast_aggregation.steps import Ctx

FUNCTIONS = ("sum", "count", "mean", "max", "min", "count_distinct", "median", "std", "last")


def _try(fn: Callable[[], Any]) -> str:
    try:
        return f"ok: {fn()}"
    except Exception as exc:
        text = f"error: {_line(exc)}"
        if exc.__context__ is not None:  # an error raised while handling another hides the real cause
            text += f" (raised while handling {_line(exc.__context__)})"
        return text


def _line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0][:240] if str(exc) else ''}"


def probe(ctx: Ctx) -> dict[str, Any]:
    ev = ctx.events()
    rows = ctx.label_rows(ev).head(20)
    src = repo.event_source(data.events_path(ctx.size))
    store = repo.open_store(data.VAR / ctx.size / "repo_capabilities")
    engine = store._get_provider().batch_engine
    windowed = repo.windowed_user_view(src)
    store.apply([repo.user, repo.item, windowed])
    out: dict[str, Any] = {}

    def hist(view: BatchFeatureView, entity_df: pd.DataFrame = rows[["user_id", "event_timestamp"]]) -> str:
        task = HistoricalRetrievalTask(
            project=store.project,
            entity_df=entity_df,
            feature_view=view,
            full_feature_name=False,
            registry=store.registry,
        )
        df = engine.get_historical_features(store.registry, task).to_df()
        return f"{len(df)} rows for {len(entity_df)} entity rows, columns {list(df.columns)}"

    end = ev["event_timestamp"].max().floor("D") + pd.Timedelta(days=1)

    def materialize(view: BatchFeatureView, start: pd.Timestamp = end - repo.W30, stop: pd.Timestamp = end) -> str:
        job = engine.materialize(
            store.registry,
            MaterializationTask(
                project=store.project,
                feature_view=view,
                start_time=start.to_pydatetime(),
                end_time=stop.to_pydatetime(),
            ),
        )[0]
        if job.error():
            raise job.error()
        return str(job.status())

    stored = store.registry.get_feature_view(windowed.name, store.project)
    out["registry_round_trip"] = {
        "declared_aggregations": len(windowed.aggregations),
        "after_apply": len(getattr(stored, "aggregations", [])),
        "type_after_apply": type(stored).__name__,
    }
    out["windowed"] = {
        "FeatureStore.get_historical_features": _try(
            lambda: len(
                store.get_historical_features(
                    rows[["user_id", "event_timestamp"]], ["user_windows:user_plays_7d"]
                ).to_df()
            )
        ),
        "FeatureStore.materialize": _try(
            lambda: store.materialize((end - repo.W30).to_pydatetime(), end.to_pydatetime(), ["user_windows"])
        ),
        "engine.get_historical_features (declared object)": _try(lambda: hist(windowed)),
        "engine.materialize (declared object)": _try(lambda: materialize(windowed)),
    }
    unwindowed = repo.unwindowed_view(src, repo.user, "user")
    online_unwindowed = repo.unwindowed_view(src, repo.user, "user", online=True)
    named = Entity(name="user", join_keys=["user_id"], value_type=ValueType.STRING)
    store.apply([named])
    out["unwindowed"] = {
        "engine.get_historical_features": _try(lambda: hist(unwindowed)),
        "engine.get_historical_features, online=True": _try(lambda: hist(online_unwindowed)),
        "engine.materialize (no timestamp column after aggregation)": _try(lambda: materialize(online_unwindowed)),
        "entity name != join key": _try(lambda: hist(repo.unwindowed_view(src, named, "user"))),
    }
    duck = repo.open_store(data.VAR / ctx.size / "repo_capabilities_duckdb", offline="duckdb")
    duck.apply([repo.user, unwindowed])
    out["unwindowed"]["duckdb offline store + udf"] = _try(
        lambda: len(
            duck._get_provider()
            .batch_engine.get_historical_features(
                duck.registry,
                HistoricalRetrievalTask(
                    project=duck.project,
                    entity_df=rows[["user_id", "event_timestamp"]],
                    feature_view=unwindowed,
                    full_feature_name=False,
                    registry=duck.registry,
                ),
            )
            .to_df()
        )
    )

    def one_function(fn: str) -> str:
        view = BatchFeatureView(
            name=f"fn_{fn}",
            entities=[repo.user],
            source=src,
            mode="pandas",
            udf=repo.flag_types,
            udf_string="flag_types",
            online=False,
            offline=False,
            ttl=repo.W30,
            schema=[Field(name=f"f_{fn}", dtype=Float64)],
            aggregations=[Aggregation(column="value", function=fn, name=f"f_{fn}")],
        )
        return hist(view)

    out["functions_local_engine"] = {fn: _try(lambda fn=fn: one_function(fn)).split(",")[0] for fn in FUNCTIONS}
    out["multiple_windows_one_column"] = _try(
        lambda: hist(
            BatchFeatureView(
                name="multi",
                entities=[repo.user],
                source=src,
                mode="pandas",
                udf=repo.flag_types,
                udf_string="flag_types",
                online=False,
                offline=False,
                ttl=repo.W30,
                schema=[Field(name="a", dtype=Float64), Field(name="b", dtype=Float64)],
                aggregations=[
                    Aggregation(column="value", function="sum", time_window=timedelta(days=7), name="a"),
                    Aggregation(column="value", function="sum", time_window=timedelta(days=30), name="b"),
                ],
            )
        )
    )

    # the workaround's online values over two materializations: does an entity that went quiet keep its old sums?
    view = repo.online_window_view(src, repo.user, "user")
    store.apply([view])
    for start, stop in ((end - 2 * repo.W30, end - repo.W30), (end - repo.W30, end)):
        materialize(view, start, stop)
    users = sorted(ev["user_id"].unique())
    online = store.get_online_features(
        features=["user_online30d:user_plays_30d"], entity_rows=[{"user_id": u} for u in users]
    ).to_df()
    want = brute.windowed(ev, pd.DataFrame({"user_id": users, "event_timestamp": end}), "user_id", repo.W30)["plays"]
    got = online["user_plays_30d"].astype("float64")
    stale = got.notna().to_numpy() & (got.fillna(0).to_numpy() != want.to_numpy())
    out["workaround_two_materializations"] = {
        "users_with_a_value": int(got.notna().sum()),
        "users_active_last_30d": int((want > 0).sum()),
        "stale_values": int(stale.sum()),
        "example": online.loc[stale].assign(want=want[stale].to_numpy()).head(1).to_dict("records"),
    }
    return out
