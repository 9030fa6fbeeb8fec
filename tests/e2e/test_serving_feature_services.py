"""Serving loads each model with its own feature service: inputs assembled by name, signatures
checked against the declarations, and a model whose features the store lacks refused while the
previous version keeps serving."""

from __future__ import annotations

import numpy as np
import pytest

from feature_repo.declarations import load
from serving.rollout.models import ModelHolder, ModelLoadError, check_signature, load_bundle
from setlist.feature_layout import Layout
from setlist.feature_sources import Events
from setlist.featureset import Feature, FeatureSet

DECLARATION = (
    "from setlist.featureset import Events, Feature\n"
    "FEATURES = [Feature('user_weekly_likes', 'user', Events('count', types=('like',), windows=(7,)),"
    " 'int64', owner='tests', since=2)]\n"
)


def _booster(names: tuple[str, ...], service: str | None, seed: int = 0):
    import xgboost as xgb

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(64, len(names))).astype(np.float32)
    b = xgb.train(
        {"objective": "binary:logistic", "max_depth": 2, "nthread": 1},
        xgb.DMatrix(X, label=rng.integers(0, 2, 64), feature_names=list(names)),
        num_boost_round=3,
    )
    if service:
        b.set_attr(feature_service=service)
    return b


def test_each_model_takes_its_own_columns_from_shared_blocks():
    fs = FeatureSet.of(
        [
            Feature("a", "user", Events("count")),
            Feature("b", "user", Events("count"), since=2),
            Feature("c", "item", Events("count")),
            Feature("d", "item", Events("count"), since=2),
        ]
    )
    v1 = Layout.of(fs.service(1).inputs, fs)
    v2 = Layout.of(fs.service(2).inputs, fs)
    user, items = np.array([1.0, 2.0]), np.array([[10.0, 20.0], [11.0, 21.0]])
    x1 = v1.assemble(user, np.zeros(0), np.zeros(0), items, np.zeros((2, 0)))
    x2 = v2.assemble(user, np.zeros(0), np.zeros(0), items, np.zeros((2, 0)))
    assert v1.names == ("a", "c") and x1.tolist() == [[1, 10], [1, 11]]
    assert v2.names == ("a", "b", "c", "d") and x2.tolist() == [[1, 2, 10, 20], [1, 2, 11, 21]]


def test_a_model_on_an_undeclared_or_redeclared_service_is_refused():
    fs = load()
    v1 = fs.service("ranker_v1").inputs
    service, layout = check_signature(_booster(v1, None), "1", fs)  # no attribute: an older model, ranker_v1
    assert service == "ranker_v1" and layout.names == v1
    with pytest.raises(ModelLoadError, match="trained on ranker_v2, which this server's declarations lack"):
        check_signature(_booster(v1, "ranker_v2"), "2", fs)
    with pytest.raises(ModelLoadError, match="no longer match the declared ranker_v1"):
        check_signature(_booster(v1[:-1], "ranker_v1"), "3", fs)


def test_a_champion_whose_features_are_not_in_the_store_is_refused_and_the_old_one_keeps_serving(tiny_copy, tmp_path):
    import mlflow

    from feature_repo.materialize import publish
    from feature_repo.store import apply, get_store

    decl = tmp_path / "decl"
    decl.mkdir()
    (decl / "mine.py").write_text(DECLARATION)
    s = tiny_copy.settings.model_copy(update={"feature_dirs": [decl]})
    fs = load(s)
    v2 = fs.service("ranker_v2")
    apply(get_store(s), s)  # registered, not yet materialized: the store has no values for it
    client = mlflow.MlflowClient(tracking_uri=s.tracking_uri)
    candidates = client.get_model_version_by_alias(s.candidates_model, "champion").version
    ranker = client.get_model_version_by_alias(s.ranker_model, "champion").version
    mlflow.set_tracking_uri(s.tracking_uri)
    with mlflow.start_run(run_name="v2-model"):
        info = mlflow.xgboost.log_model(
            _booster(v2.inputs, "ranker_v2"),
            name="ranker",
            model_format="ubj",
            registered_model_name=s.ranker_model,
            pip_requirements=["xgboost"],
        )
    new = str(info.registered_model_version)

    pairs = iter([(candidates, ranker), (candidates, new), (candidates, new)])
    holder = ModelHolder(s, loader=load_bundle, versions=lambda _s, _a: next(pairs))
    assert holder.refresh() and holder.current.service == "ranker_v1"
    assert not holder.refresh()  # the v2 model is refused: the old champion keeps serving
    assert holder.current.ranker_version == ranker
    with pytest.raises(ModelLoadError, match="user_weekly_likes_7d"):
        load_bundle(s, (candidates, new))

    publish(s)  # materialized: now the same model loads, each input from its own column
    bundle = load_bundle(s, (candidates, new))
    assert bundle.service == "ranker_v2" and bundle.layout is not None and bundle.layout.names == v2.inputs
