"""The online store's direct decoding gives every stored value exactly as Feast's own conversion does."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from feast.protos.feast.types.Value_pb2 import (
    BoolList,
    DoubleList,
    FloatList,
    Int32List,
    Int64List,
    Null,
    StringList,
    StringSet,
)
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.type_map import feast_value_type_to_python_type
from google.protobuf.timestamp_pb2 import Timestamp

from feature_repo.online import python_value, stored_time

VALUES = [
    ValueProto(),
    ValueProto(string_val=""),
    ValueProto(string_val="rock"),
    ValueProto(int64_val=0),
    ValueProto(int64_val=-(2**40)),
    ValueProto(int32_val=7),
    ValueProto(double_val=0.25),
    ValueProto(float_val=0.1),  # float32: the Python float of the stored float32, as Feast gives it
    ValueProto(bool_val=False),
    ValueProto(bool_val=True),
    ValueProto(bytes_val=b"\x00\x01"),
    ValueProto(string_list_val=StringList(val=["a", "b"])),
    ValueProto(string_list_val=StringList(val=[])),
    ValueProto(int64_list_val=Int64List(val=[1, 2])),
    ValueProto(int32_list_val=Int32List(val=[3])),
    ValueProto(double_list_val=DoubleList(val=[0.5, 1.5])),
    ValueProto(float_list_val=FloatList(val=[0.1, 0.2])),
    ValueProto(bool_list_val=BoolList(val=[True, False])),
    # kinds left to Feast's conversion
    ValueProto(unix_timestamp_val=1_700_000_000),
    ValueProto(null_val=Null.NULL),
    ValueProto(json_val='{"a": 1}'),
    ValueProto(string_set_val=StringSet(val=["x"])),
]


@pytest.mark.parametrize("value", VALUES, ids=lambda v: v.WhichOneof("val") or "unset")
def test_a_stored_value_decodes_as_feast_decodes_it(value: ValueProto) -> None:
    expected = feast_value_type_to_python_type(value)
    got = python_value(value.SerializeToString())
    assert got == expected
    assert type(got) is type(expected)


def test_a_missing_field_is_none() -> None:
    assert python_value(None) is None
    assert python_value(b"") is None


def test_a_row_time_reads_as_feast_reads_it() -> None:
    ts = Timestamp()
    ts.FromDatetime(datetime(2026, 3, 4, 5, 6, 7, 123456, tzinfo=UTC))
    assert stored_time(ts.SerializeToString()) == datetime(2026, 3, 4, 5, 6, 7, 123456, tzinfo=UTC)
    assert stored_time(None) == datetime(1970, 1, 1, tzinfo=UTC)
