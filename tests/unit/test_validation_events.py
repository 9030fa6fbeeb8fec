"""The raw-events gate: clean events pass; each contract violation fails and is named."""

import re
from datetime import UTC, datetime

import pytest

from validation.api import validate_events
from validation.gx import Workspace
from validation.testing import clean_events


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    return Workspace(tmp_path_factory.mktemp("data") / "validation")


@pytest.fixture(scope="module")
def events():
    return clean_events()


def test_clean_events_pass(ws, events):
    result = validate_events(events, workspace=ws)
    assert result.passed, result.summary()
    assert not result.warnings
    assert result.data_docs == ws.docs_index and ws.docs_index.exists()


def test_generated_events_pass(ws):
    generate = pytest.importorskip("ingest.generate").generate
    data = generate("tiny", seed=7, end=datetime.now(UTC), progress=False)
    result = validate_events(data.events, workspace=ws, docs=False)
    assert result.passed, result.summary()


@pytest.mark.parametrize("column", ["user_id", "item_id", "event_id"])
def test_null_ids_fail(ws, events, column):
    bad = events.copy()
    bad.loc[[3, 10], column] = None
    result = validate_events(bad, workspace=ws, docs=False)
    assert not result.passed
    assert f"expect_column_values_to_not_be_null({column})" in result.failures


def test_empty_id_fails(ws, events):
    bad = events.copy()
    bad.loc[4, "user_id"] = ""
    assert (
        "expect_column_value_lengths_to_be_between(user_id)" in validate_events(bad, workspace=ws, docs=False).failures
    )


def test_out_of_range_play_value_fails(ws, events):
    bad = events.copy()
    play = bad.index[bad["type"] == "play"][0]
    bad.loc[play, "value"] = 1.7
    result = validate_events(bad, workspace=ws, docs=False)
    assert result.failures == ["expect_column_values_to_be_between(value)"]
    row = next(r for r in result.rows if r.expectation == result.failures[0])
    assert "1 unexpected" in row.observed and "type == 'play'" in row.expected


def test_out_of_range_value_of_other_types_is_allowed(ws, events):
    bad = events.copy()
    like = bad.index[bad["type"] == "like"][0]
    bad.loc[like, "value"] = 5.0
    assert validate_events(bad, workspace=ws, docs=False).passed


def test_unknown_event_type_fails(ws, events):
    bad = events.copy()
    bad.loc[7, "type"] = "purchase"
    result = validate_events(bad, workspace=ws, docs=False)
    assert result.failures == ["expect_column_values_to_be_in_set(type)"]


def test_removed_column_fails(ws, events):
    result = validate_events(events.drop(columns=["device"]), workspace=ws, docs=False)
    assert "expect_column_to_exist(device)" in result.failures
    assert "expect_table_columns_to_match_set" in result.failures


def test_duplicate_event_id_and_unknown_schema_version_fail(ws, events):
    bad = events.copy()
    bad.loc[5, "event_id"] = bad.loc[6, "event_id"]
    bad.loc[8, "schema_version"] = 99
    failures = validate_events(bad, workspace=ws, docs=False).failures
    assert "expect_column_values_to_be_unique(event_id)" in failures
    assert "expect_column_values_to_be_in_set(schema_version)" in failures


def test_insane_timestamps_fail(ws, events):
    bad = events.copy()
    bad.loc[1, "timestamp"] = datetime(1970, 1, 1, tzinfo=UTC)
    bad.loc[2, "timestamp"] = datetime(2999, 1, 1, tzinfo=UTC)
    result = validate_events(bad, workspace=ws, docs=False)
    assert result.failures == ["expect_column_values_to_be_between(timestamp)"]
    assert "2 unexpected" in next(r.observed for r in result.rows if r.status == "fail")


def test_wrong_type_fails(ws, events):
    bad = events.copy()
    bad["value"] = bad["value"].astype(str)
    assert "expect_column_logical_type_to_be(value)" in validate_events(bad, workspace=ws, docs=False).failures


def test_old_results_are_pruned(tmp_path, events):
    small = Workspace(tmp_path / "validation", keep_runs=2)
    for _ in range(4):
        validate_events(events.head(200), workspace=small)
    stored = list((small.gx_dir / "uncommitted" / "validations" / "events").glob("*/*/*.json"))
    pages = list((small.docs_dir / "validations" / "events").glob("*/*/*.html"))
    assert len(stored) == 2 and len(pages) == 2
    links = set(re.findall(r'validations/events/[^"\']+\.html', small.docs_index.read_text()))
    assert len(links) == 2 and all((small.docs_dir / link).exists() for link in links)


@pytest.mark.parametrize("width", [80, 100, 140, 200])
def test_a_gate_table_fits_the_console_with_its_status_column(width):
    # a log file's console is 140 columns: long names and values once pushed the status off its edge
    import io

    from rich.console import Console

    from validation.result import GateResult, Row

    rows = [
        Row(
            "expect_column_distribution_drift_to_be_less_than(user_profile_field_with_a_long_name)",
            "{arm, consent_analytics, consent_personalization, device, event_id, item_id, locale}",
            "contains {event_id, schema_version, user_id, session_id, item_id, type, timestamp}",
            "fail",
        )
    ]
    out = io.StringIO()
    GateResult("events", rows).render(Console(width=width, file=out))
    lines = out.getvalue().splitlines()
    assert max(len(line) for line in lines) <= width
    assert "status" in lines[2] and "fail" in lines[4]


@pytest.mark.parametrize("value", [float("inf"), float("-inf")])
def test_an_infinite_value_of_any_type_fails(ws, events, value):
    bad = events.copy()
    like = bad.index[bad["type"] == "like"][0]
    bad.loc[like, "value"] = value
    result = validate_events(bad, workspace=ws, docs=False)
    assert result.failures == ["expect_column_values_to_not_be_in_set(value)"]
