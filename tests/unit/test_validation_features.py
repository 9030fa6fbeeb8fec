"""Feature-batch and training-set gates."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from feature_repo.declarations import load
from validation.api import validate_feature_batch, validate_training_set
from validation.gx import Workspace
from validation.suites.features import FeatureSpec, FeatureView, feature_suite, views_of
from validation.testing import clean_feature_batch, clean_training_set

AS_OF = datetime(2024, 5, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    return Workspace(tmp_path_factory.mktemp("data") / "validation")


#: validation is handed the declarations (it imports no pipeline package); the tests load the repo's
FEATURES = load()
VIEWS = views_of(FEATURES)


@pytest.mark.parametrize("view", sorted(VIEWS))
def test_clean_batches_pass(ws, view):
    frame = clean_feature_batch(view, AS_OF, features=FEATURES)
    result = validate_feature_batch(view, frame, AS_OF, features=FEATURES, workspace=ws)
    assert result.passed, result.summary()


@pytest.mark.parametrize(
    "column,value,failing",
    [
        ("user_skip_rate_30d", 1.5, "expect_column_values_to_be_between(user_skip_rate_30d)"),
        ("user_plays_7d", -1, "expect_column_values_to_be_between(user_plays_7d)"),
        ("user_days_since_last", np.nan, "expect_column_values_to_not_be_null(user_days_since_last)"),
    ],
)
def test_bad_values_fail(ws, column, value, failing):
    frame = clean_feature_batch("user_profile", AS_OF, features=FEATURES)
    frame.loc[2, column] = value
    result = validate_feature_batch("user_profile", frame, AS_OF, features=FEATURES, workspace=ws, docs=False)
    assert failing in result.failures


def test_list_feature_elements_are_checked(ws):
    frame = clean_feature_batch("user_profile", AS_OF, features=FEATURES)
    frame.at[4, "user_genre_affinity"] = np.array([1.4, 0.0, 0.0, 0.0, 0.0, 0.0], dtype=np.float32)
    result = validate_feature_batch("user_profile", frame, AS_OF, features=FEATURES, workspace=ws, docs=False)
    assert result.failures == ["expect_column_list_elements_to_be_between(user_genre_affinity)"]


@pytest.mark.parametrize("cells", ["arrays", "lists"])
@pytest.mark.parametrize("bad", [None, 1.4, np.nan])
def test_list_elements_are_checked_in_blocks_of_arrays_or_cell_by_cell(ws, monkeypatch, cells, bad):
    """Equal numeric arrays are checked a block at a time, anything else cell by cell: the same verdict."""
    import validation.expectations.types as types

    monkeypatch.setattr(types, "_BLOCK_ROWS", 3)  # several blocks, the bad row in the second
    frame = clean_feature_batch("user_profile", AS_OF, features=FEATURES)
    if bad is not None:
        shares = np.array(frame.at[4, "user_genre_affinity"], dtype=np.float32)
        shares[1] = bad
        frame.at[4, "user_genre_affinity"] = shares
    if cells == "lists":
        frame["user_genre_affinity"] = [list(map(float, v)) for v in frame["user_genre_affinity"]]
    result = validate_feature_batch("user_profile", frame, AS_OF, features=FEATURES, workspace=ws, docs=False)
    assert result.failures == (
        [] if bad is None else ["expect_column_list_elements_to_be_between(user_genre_affinity)"]
    )


def test_stale_batch_fails_freshness(ws):
    frame = clean_feature_batch("item_stats", AS_OF - timedelta(days=5), features=FEATURES)
    result = validate_feature_batch("item_stats", frame, AS_OF, features=FEATURES, workspace=ws, docs=False)
    assert result.failures == ["expect_column_max_to_be_between(event_timestamp)"]
    assert validate_feature_batch(
        "item_stats", frame, AS_OF, features=FEATURES, max_age=timedelta(days=6), workspace=ws, docs=False
    ).passed


def test_duplicate_entity_snapshot_and_missing_feature_fail(ws):
    frame = clean_feature_batch("item_stats", AS_OF, features=FEATURES)
    bad = pd.concat([frame, frame.iloc[[0]]], ignore_index=True).drop(columns=["item_genre"])
    result = validate_feature_batch("item_stats", bad, AS_OF, features=FEATURES, workspace=ws, docs=False)
    assert "expect_compound_columns_to_be_unique(item_id,event_timestamp)" in result.failures
    assert "expect_table_columns_to_match_set" in result.failures


def test_unknown_view_is_rejected():
    with pytest.raises(ValueError, match="unknown feature view"):
        validate_feature_batch(
            "nope", clean_feature_batch("item_stats", AS_OF, features=FEATURES), AS_OF, features=FEATURES
        )


def test_a_new_feature_is_one_line():
    view = FeatureView("v", "user_id", (FeatureSpec("new_rate", "float", 0.0, 1.0),))
    types = [e.expectation_type for e in feature_suite(view, AS_OF).expectations]
    assert "expect_column_values_to_be_between" in types


def test_clean_training_set_passes(ws):
    frame, features = clean_training_set()
    result = validate_training_set(frame, features, opted_out={"someone-else"}, workspace=ws)
    assert result.passed, result.summary()


def test_identifier_feature_fails(ws):
    frame, features = clean_training_set()
    frame["session_id"] = "s1"
    result = validate_training_set(frame, features + ["session_id", "item_id"], set(), workspace=ws, docs=False)
    assert result.failures == ["expect_feature_columns_to_exclude_identifiers"]
    assert "item_id" in next(r.observed for r in result.rows if r.status == "fail")


def test_opted_out_user_fails(ws):
    frame, features = clean_training_set()
    result = validate_training_set(frame, features, {frame.loc[0, "user_id"]}, workspace=ws, docs=False)
    assert result.failures == ["expect_column_values_to_be_in_set(user_opted_out)"]


def test_one_positive_per_query_with_the_rankers_negatives_passes_the_packaged_limits(ws):
    # the sparsest training set the builder makes (a positive and NEGATIVES_PER_QUERY negatives per
    # query, as in a log of one review per user) is not a label problem; a set with no positive is
    from training.run import NEGATIVES_PER_QUERY

    frame, features = clean_training_set(queries=60, per_query=1 + NEGATIVES_PER_QUERY)
    assert validate_training_set(frame, features, set(), workspace=ws, docs=False).passed
    frame["label"] = 0
    result = validate_training_set(frame, features, set(), workspace=ws, docs=False)
    assert result.failures == ["expect_column_mean_to_be_between(label)"]


def test_label_balance_bounds(ws):
    frame, features = clean_training_set()
    frame["label"] = 0
    frame.loc[0, "label"] = 1
    result = validate_training_set(frame, features, set(), workspace=ws, docs=False)
    assert result.failures == ["expect_column_mean_to_be_between(label)"]
    assert validate_training_set(frame, features, set(), positive_share=(0.0, 0.8), workspace=ws, docs=False).passed
