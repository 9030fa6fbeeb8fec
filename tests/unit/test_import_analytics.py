"""Product analytics exports (GA4 and Firebase, Segment, Mixpanel, Amplitude, PostHog, Snowplow): the
import names the tool and where it keeps the user, the time and the kinds of event, since their column
names alone pointed elsewhere (GA4's device.vendor_id as the user); key/value records and lists are
refused as ids; Amplitude's session -1 is no session."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from ingest.importer import ImportFormatError, load_interactions
from setlist.consent import parse_flag

NOW = pd.Timestamp("2024-03-01 12:00", tz="UTC")


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _ga4_row(k: int) -> dict:
    return {
        "event_date": "20240101",
        "event_timestamp": str(1_704_068_600_000_000 + k * 1_000_000),
        "event_name": "select_content",
        "event_params": [
            {"key": "ga_session_id", "value": {"string_value": None, "int_value": "1704068603"}},
            {"key": "item_id", "value": {"string_value": f"t{k % 7}", "int_value": None}},
        ],
        "user_pseudo_id": f"{k % 5}.1704083108",
        "device": {"category": "mobile", "vendor_id": None, "time_zone_offset_seconds": 3600},
        "stream_id": "4567890123",
    }


@pytest.mark.parametrize(
    ("rows", "said"),
    [
        ([_ga4_row(k) for k in range(20)], "a GA4 or Firebase BigQuery export: pivot event_params"),
        (
            [
                {"type": "track", "event": "Product Viewed", "userId": None, "anonymousId": f"a{k % 4}",
                 "messageId": f"m{k}", "timestamp": f"2024-01-01T00:0{k % 10}:00Z", "properties": {"product_id": "p1"}}
                for k in range(20)
            ],
            "a Segment or RudderStack export: identified users are in userId and anonymous visitors in anonymousId",
        ),
        (
            [{"anonymous_id": f"a{k % 4}", "user_id": None, "event": "product_viewed", "message_id": f"m{k}",
              "timestamp": f"2024-01-01T00:0{k % 10}:00Z", "product_id": "p1"} for k in range(20)],
            "a Segment or RudderStack warehouse table: identified users are in user_id",
        ),
        (
            [{"event": "Song Played", "properties": {"time": 1_704_068_096 + k, "distinct_id": f"$device:{k % 3}",
                                                     "track_id": "t1"}} for k in range(20)],
            "a Mixpanel export: --user-col properties.distinct_id",
        ),
        (
            [{"amplitude_id": 100 + k % 4, "user_id": None, "event_type": "song_played", "session_id": -1,
              "event_time": f"2024-01-01 00:00:{k:02d}.000000", "event_properties": {"song_id": "s1"}}
             for k in range(20)],
            "an Amplitude export: --user-col amplitude_id",
        ),
    ],
)  # fmt: skip
def test_an_analytics_export_is_named_with_where_it_keeps_the_user(tmp_path, rows, said):
    with pytest.raises(ImportFormatError) as refused:
        load_interactions(_jsonl(tmp_path / "export.json", rows), now=NOW)
    message = " ".join(str(refused.value).split())
    assert said in message and "Product analytics exports" in message
    assert "by their names, its columns would import with" not in message


def test_a_posthog_csv_is_told_to_flatten_its_properties(tmp_path):
    rows = [
        {"uuid": f"u-{k}", "event": "song_played", "properties": json.dumps({"track_id": "t1", "$os": "iOS"}),
         "timestamp": "2024-01-01T00:31:16Z", "distinct_id": f"d{k % 3}", "person_id": f"p{k % 3}",
         "elements_chain": ""}
        for k in range(10)
    ]  # fmt: skip
    path = tmp_path / "events.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    with pytest.raises(ImportFormatError, match="a PostHog export: its properties column is JSON text"):
        load_interactions(path, now=NOW)


def test_key_value_records_and_lists_are_no_ids(tmp_path):
    path = _jsonl(tmp_path / "ga4.json", [_ga4_row(k) for k in range(20)])
    options = {"time_col": "event_timestamp", "time_unit": "us", "now": NOW}
    with pytest.raises(ImportFormatError, match=r"--item-col 'event_params' holds lists of key/value records \(ga_"):
        load_interactions(path, user_col="user_pseudo_id", item_col="event_params", **options)
    with pytest.raises(ImportFormatError, match=r"--user-col 'event_params' holds lists of key/value records"):
        load_interactions(path, user_col="event_params", item_col="event_name", **options)
    listed = _jsonl(tmp_path / "lists.json", [{"who": [k, k + 1], "item": "a", "t": "2024-01-01"} for k in range(9)])
    with pytest.raises(ImportFormatError, match=r"--user-col 'who' holds lists \(\[0, 1\], …\), not one id per row"):
        load_interactions(listed, user_col="who", item_col="item", time_col="t", now=NOW)


def test_a_negative_session_cell_is_no_session(tmp_path):
    """Amplitude's session_id -1: a user's sessionless rows of two days were one session."""
    rows = [
        {"amplitude_id": 1, "event_time": "2024-01-01 00:00:00", "song": "a", "session_id": -1},
        {"amplitude_id": 1, "event_time": "2024-01-01 00:05:00", "song": "b", "session_id": -1},
        {"amplitude_id": 1, "event_time": "2024-01-03 09:00:00", "song": "c", "session_id": -1},
        {"amplitude_id": 1, "event_time": "2024-01-04 09:00:00", "song": "d", "session_id": 1704358800},
        {"amplitude_id": 1, "event_time": "2024-01-04 23:00:00", "song": "e", "session_id": 1704358800},
        # a signed hash is an id, however negative (BigQuery's FARM_FINGERPRINT)
        {"amplitude_id": 1, "event_time": "2024-01-06 09:00:00", "song": "f", "session_id": -9223372036854775807},
        {"amplitude_id": 1, "event_time": "2024-01-08 09:00:00", "song": "g", "session_id": -9223372036854775807},
    ]
    path = _jsonl(tmp_path / "amp.jsonl", rows)
    events, _, _ = load_interactions(
        path, user_col="amplitude_id", item_col="song", time_col="event_time", session_col="session_id", now=NOW
    )
    session = events.set_index("item_id")["session_id"]
    assert session["a"] == session["b"] != session["c"]  # cut at the 30-minute gap, as rows without a session
    assert session["d"] == session["e"]  # a named session holds across hours
    assert session["f"] == session["g"]


def test_an_unread_event_column_is_said_nested_or_beside_a_type(tmp_path):
    """Segment's type (track, page) beside its event (what was done), and a topic's value.event: the
    note named type, or nothing, and every row imported as a play."""
    rows = [
        {"type": "track", "event": ["Product Viewed", "Product Added"][k % 2], "anonymousId": f"a{k % 4}",
         "timestamp": f"2024-01-01T00:0{k % 10}:00Z", "properties": {"product_id": f"p{k % 3}"}}
        for k in range(20)
    ]  # fmt: skip
    options = {"user_col": "anonymousId", "item_col": "properties.product_id", "now": NOW}
    _, _, flat = load_interactions(_jsonl(tmp_path / "segment.jsonl", rows), **options)
    assert "--type-col event reads it" in str(flat) and "--type-col type reads it" not in str(flat)
    wrapped = [{"topic": "events", "timestamp": 1_704_071_000_446, "value": r} for r in rows]
    options = {"user_col": "value.anonymousId", "item_col": "value.properties.product_id", "now": NOW}
    _, _, nested = load_interactions(_jsonl(tmp_path / "topic.jsonl", wrapped), time_col="value.timestamp", **options)
    assert "--type-col value.event reads it" in str(nested)
    # a device's or a page's nested type is no kind of event
    typed = [{**r, "device": {"type": ["mobile", "desktop"][k % 2]}} for k, r in enumerate(rows)]
    options = {"user_col": "anonymousId", "item_col": "properties.product_id", "type_col": "event", "now": NOW}
    _, _, device = load_interactions(_jsonl(tmp_path / "device.jsonl", typed), **options)
    assert "device.type" not in str(device)


def test_columns_empty_on_every_row_are_not_suggested(tmp_path):
    rows = [{"visitor_id": f"v{k % 4}", "adid": None, "sample_rate": None, "product_id": f"p{k % 3}",
             "created": f"2024-01-01T00:0{k % 10}:00Z"} for k in range(20)]  # fmt: skip
    with pytest.raises(ImportFormatError) as refused:
        load_interactions(_jsonl(tmp_path / "log.jsonl", rows), now=NOW)
    message = " ".join(str(refused.value).split())
    assert "--item-col product_id" in message and "adid" not in message.split("would import with")[-1]
    assert "sample_rate" not in message.split("would import with")[-1]


def test_search_rows_without_a_query_column_name_the_one_that_holds_their_text(tmp_path):
    rows = [
        {"user": f"u{k % 3}", "item": None if k % 4 == 0 else f"p{k % 5}", "name": "search" if k % 4 == 0 else "play",
         "search_term": "lofi beats" if k % 4 == 0 else None, "ts": f"2024-01-01T00:{k:02d}:00Z"}
        for k in range(20)
    ]  # fmt: skip
    path = _jsonl(tmp_path / "ga4_rows.jsonl", rows)
    options = {"user_col": "user", "item_col": "item", "time_col": "ts", "type_col": "name", "now": NOW}
    with pytest.raises(ImportFormatError) as refused:  # before anything is stored: each would be quarantined
        load_interactions(path, **options)
    said = " ".join(str(refused.value).split())
    assert "5 search rows, and no --query-col" in said and "'search_term' looks like their text" in said
    _, _, told = load_interactions(path, query_col="search_term", **options)
    assert "missing_query" not in str(told)


def test_ga4s_consent_mode_is_offered_and_read_as_analytics_consent(tmp_path):
    rows = [_ga4_row(k) for k in range(20)]
    with pytest.raises(ImportFormatError, match="--analytics-consent-col privacy_info.analytics_storage"):
        load_interactions(_jsonl(tmp_path / "export.json", rows), now=NOW)
    # after the README's pivot: a row per event, the consent mode's answer nested as BigQuery writes it
    flat = [
        {"user_pseudo_id": r["user_pseudo_id"], "item_id": f"t{k % 7}", "event_timestamp": r["event_timestamp"],
         "privacy_info": {"analytics_storage": ("Yes", "No", None)[k % 3], "ads_storage": None}}
        for k, r in enumerate(rows)
    ]  # fmt: skip
    events, _, _ = load_interactions(
        _jsonl(tmp_path / "pivoted.json", flat), user_col="user_pseudo_id", item_col="item_id",
        time_col="event_timestamp", time_unit="us", analytics_consent_col="privacy_info.analytics_storage", now=NOW,
    )  # fmt: skip
    assert [parse_flag(v) for v in events["consent_analytics"].head(3)] == [True, False, None]  # as intake reads it


def test_an_orders_products_listed_beside_an_empty_item_are_named(tmp_path):
    rows = [
        {"event": "Order Completed", "userId": f"u{k % 6}", "timestamp": f"2024-01-01T00:{k:02d}:00Z",
         "properties": {"products": [{"product_id": f"p{k % 7}"}, {"product_id": f"p{(k + 1) % 7}"}]}}
        if k % 5 == 0
        else {"event": "Product Viewed", "userId": f"u{k % 6}", "timestamp": f"2024-01-01T00:{k:02d}:00Z",
              "properties": {"product_id": f"p{k % 7}"}}
        for k in range(60)
    ]  # fmt: skip
    options = dict(user_col="userId", item_col="properties.product_id", time_col="timestamp", now=NOW)
    _, _, summary = load_interactions(_jsonl(tmp_path / "segment.jsonl", rows), **options)
    said = " ".join(str(summary).split())
    assert "12 rows have no 'properties.product_id' (quarantined); if 'properties.products' lists their items" in said
    viewed = _jsonl(tmp_path / "viewed.jsonl", [r for r in rows if r["event"] == "Product Viewed"])
    assert "lists their items" not in str(load_interactions(viewed, **options)[2])  # no row without its item
